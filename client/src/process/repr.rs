//! `Display` of a process, in the shape of Python's `BaseProcess.__repr__`:
//! `<Process name='Process-1' pid=1234 parent=1000 stopped exitcode=-SIGTERM daemon>`.

use std::fmt;

use super::{Kind, Process};

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        let st = self.state();
        let mut exitcode = None;
        let status = if self.inner.kind != Kind::Child {
            "started"
        } else if st.closed {
            "closed"
        } else if st.creator != Some(std::process::id()) {
            "unknown"
        } else if let Some(popen) = &st.popen {
            exitcode = popen.poll().ok().flatten();
            if exitcode.is_some() {
                "stopped"
            } else {
                "started"
            }
        } else {
            "initial"
        };
        write!(f, "<Process name='{name}'")?;
        match (self.inner.kind, &st.popen) {
            (Kind::Child, Some(p)) => write!(f, " pid={}", p.pid())?,
            (Kind::Current, _) => write!(f, " pid={}", std::process::id())?,
            _ => {}
        }
        let parent = match self.inner.kind {
            Kind::Parent => None,
            _ => st.creator,
        };
        match parent {
            Some(pid) => write!(f, " parent={pid} {status}")?,
            None => write!(f, " parent=None {status}")?,
        }
        if let Some(code) = exitcode {
            match signal_name(-code) {
                Some(sig) if code < 0 => write!(f, " exitcode=-{sig}")?,
                _ => write!(f, " exitcode={code}")?,
            }
        }
        if st.daemon {
            write!(f, " daemon")?;
        }
        write!(f, ">")
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn signal_name(n: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(n)
        .ok()
        .map(|s| s.as_str())
}
