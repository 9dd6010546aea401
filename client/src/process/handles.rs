//! The handles that stand for processes this one did not start: itself
//! (`current_process()`) and its parent (`parent_process()`), which
//! Python models as `_MainProcess` and `_ParentProcess`.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::bootstrap::ChildSpec;
use super::current::AuthKey;
use super::{Kind, Process, State};

impl Process {
    /// The handle of the main process.
    pub(crate) fn current_main(authkey: AuthKey) -> Process {
        Process::make(
            Kind::Current,
            State {
                name: "MainProcess".into(),
                identity: Vec::new(),
                daemon: false,
                authkey,
                creator: None,
                method: None,
                target: None,
                popen: None,
                started: true,
                closed: false,
                parent_pidfd: None,
            },
        )
    }

    /// The handle of a child, made in the child.
    pub(crate) fn current_child(spec: &ChildSpec, authkey: AuthKey) -> Process {
        Process::make(
            Kind::Current,
            State {
                name: spec.name.clone(),
                identity: spec.identity.clone(),
                daemon: spec.daemon,
                authkey,
                creator: Some(spec.parent_pid),
                method: None,
                target: None,
                popen: None,
                started: true,
                closed: false,
                parent_pidfd: None,
            },
        )
    }

    /// The handle of the parent, made in the child.
    pub(crate) fn parent_handle(name: String, pid: u32, pidfd: Option<Arc<OwnedFd>>) -> Process {
        Process::make(
            Kind::Parent,
            State {
                name,
                identity: Vec::new(),
                daemon: false,
                authkey: AuthKey::new(Vec::new()),
                creator: None,
                method: None,
                target: None,
                popen: None,
                started: true,
                closed: false,
                parent_pidfd: pidfd,
            },
        )
        .with_parent_pid(pid)
    }

    fn with_parent_pid(self, pid: u32) -> Process {
        // The parent handle keeps its pid in `creator`'s place.
        self.state().creator = Some(pid);
        self
    }
}
