//! Exits on their way from the reaper to the event loop: each is annotated with
//! whether the unit's cgroup counted a new OOM kill, read in a blocking thread so the
//! loop never touches cgroupfs. One exit at a time, so their order is kept.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cgroup::CgroupTree;
use crate::reaper::Exit;

/// An exit of a unit's registered process.
#[derive(Debug)]
pub struct UnitExit {
    pub exit: Exit,
    /// The unit's cgroup counted an OOM kill since the previous exit: it explains
    /// this one.
    pub oom_killed: bool,
}

pub async fn annotate(
    mut exits: mpsc::UnboundedReceiver<Exit>,
    driver: Option<Arc<CgroupTree>>,
    out: mpsc::UnboundedSender<UnitExit>,
) {
    // OOM kills already accounted per unit, for units that had any.
    let mut seen: HashMap<String, u64> = HashMap::new();
    while let Some(exit) = exits.recv().await {
        // Only a main process's exit is explained by an OOM kill.
        if exit.role != crate::reaper::Role::Main {
            if out
                .send(UnitExit {
                    exit,
                    oom_killed: false,
                })
                .is_err()
            {
                return;
            }
            continue;
        }
        let count = match &driver {
            Some(driver) => {
                let (driver, unit) = (driver.clone(), exit.owner.clone());
                tokio::task::spawn_blocking(move || driver.oom_kills(&unit))
                    .await
                    .unwrap_or(0)
            }
            None => 0,
        };
        // Only units with OOM kills have an entry (a missing one counts 0): a storm
        // of crash-looping units that come and go leaves no name behind. A removed
        // unit's cgroup goes with it, and one of the same name starts again at 0.
        let before = if count == 0 {
            seen.remove(&exit.owner).unwrap_or(0)
        } else {
            seen.insert(exit.owner.clone(), count).unwrap_or(0)
        };
        let oom_killed = count > before;
        if out.send(UnitExit { exit, oom_killed }).is_err() {
            return;
        }
    }
}
