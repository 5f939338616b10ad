//! Object names: Kubernetes wants DNS-1123 labels, compose a narrower set than
//! unit names allow. A changed name is warned about, as it is how units reach
//! each other.

/// `name` as a DNS-1123 label: lowercase `[a-z0-9-]`, alphanumeric at both ends,
/// at most 63 bytes. Unit names (`[A-Za-z0-9_.@-]`, 64 bytes) always keep at
/// least one alphanumeric, so the result is never empty for them.
pub fn dns_label(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let mut label: String = mapped.trim_matches('-').chars().take(63).collect();
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() {
        label.push('x');
    }
    label
}

/// `name` as a compose service name (`[a-zA-Z0-9._-]`).
pub fn compose_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for (name, want) in [
            ("web", "web"),
            ("API", "api"),
            ("my_app.v2", "my-app-v2"),
            ("worker@3", "worker-3"),
            ("_x_", "x"),
            (&"a".repeat(64), &"a".repeat(63)),
            (&format!("{}.b", "a".repeat(62)), &"a".repeat(62)),
        ] {
            assert_eq!(dns_label(name), want, "{name}");
        }
    }

    #[test]
    fn compose_names() {
        assert_eq!(compose_name("worker@3"), "worker-3");
        assert_eq!(compose_name("my_app.v2"), "my_app.v2");
    }
}
