//! Enums whose values are written as fixed names in unit files.
//!
//! One table per enum (its `VARIANTS` and `name`) serves parsing, error
//! messages and display, so a name can never be accepted by one and
//! missing from another.

/// A closed set of values, each with the name a unit file uses for it.
pub trait Named: Copy + Sized + 'static {
    /// Every value, in the order error messages list them.
    const VARIANTS: &'static [Self];
    /// What a value of this kind is called in messages ("namespace").
    const WHAT: &'static str;

    /// The unit-file name of this value.
    fn name(self) -> &'static str;

    /// The value written as `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::VARIANTS.iter().copied().find(|v| v.name() == name)
    }

    /// `"a", "b", "c"`: the accepted names, for error messages.
    fn expected() -> String {
        let names: Vec<String> = Self::VARIANTS
            .iter()
            .map(|v| format!("{:?}", v.name()))
            .collect();
        names.join(", ")
    }

    /// Parses a name, or says which names are accepted.
    fn parse(name: &str) -> Result<Self, String> {
        Self::from_name(name).ok_or_else(|| {
            format!(
                "unknown {} {name:?}: expected one of {}",
                Self::WHAT,
                Self::expected()
            )
        })
    }
}
