//! Injected faults: `fail=KIND:N[:CODE]`, `lose_device=KIND:N`, `abort=KIND:N`.
//!
//! Each fault counts the calls of its kind from the moment it is configured and
//! fires once, on the Nth one; then it is spent.

use super::calls::{Call, CopyKind};
use axcl_sys::rt::axclError;

/// The `KIND` of a fault entry: which calls it counts (see the table in `calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultKind {
    Malloc,
    Free,
    Memset,
    Memcpy,
    H2d,
    D2h,
    D2d,
    Load,
    Bind,
    Execute,
    Any,
}

impl FaultKind {
    /// Whether a fault of this kind counts `call`.
    pub(super) fn matches(self, call: Call) -> bool {
        use CopyKind::*;
        match (self, call) {
            (FaultKind::Any, call) => call.is_fault_point(),
            (FaultKind::Malloc, Call::Malloc)
            | (FaultKind::Free, Call::Free)
            | (FaultKind::Memset, Call::Memset)
            | (FaultKind::Memcpy, Call::Memcpy(_))
            | (FaultKind::H2d, Call::Memcpy(HostToDevice))
            | (FaultKind::D2h, Call::Memcpy(DeviceToHost))
            | (FaultKind::D2d, Call::Memcpy(DeviceToDevice))
            | (FaultKind::Load, Call::Load)
            | (FaultKind::Bind, Call::Bind)
            | (FaultKind::Execute, Call::Execute) => true,
            _ => false,
        }
    }

    const ALL: [(FaultKind, &'static str); 11] = [
        (FaultKind::Malloc, "malloc"),
        (FaultKind::Free, "free"),
        (FaultKind::Memset, "memset"),
        (FaultKind::Memcpy, "memcpy"),
        (FaultKind::H2d, "h2d"),
        (FaultKind::D2h, "d2h"),
        (FaultKind::D2d, "d2d"),
        (FaultKind::Load, "load"),
        (FaultKind::Bind, "bind"),
        (FaultKind::Execute, "execute"),
        (FaultKind::Any, "any"),
    ];

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, name)| *name == text).map(|&(kind, _)| kind)
    }

    pub(super) fn name(self) -> &'static str {
        Self::ALL.iter().find(|(kind, _)| *kind == self).map_or("?", |&(_, name)| name)
    }
}

/// What a fault does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultAction {
    /// The call fails with this code (or its kind's default) and has no effect.
    Fail(Option<axclError>),
    /// The device is lost: this and every later device call fails until reset.
    LoseDevice,
    /// The process aborts.
    Abort,
}

impl FaultAction {
    /// Precedence when several faults fire on the same call.
    fn severity(self) -> u8 {
        match self {
            FaultAction::Fail(_) => 0,
            FaultAction::LoseDevice => 1,
            FaultAction::Abort => 2,
        }
    }
}

/// One armed fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fault {
    pub action: FaultAction,
    pub kind: FaultKind,
    /// The matching call that fires it (1-based).
    pub nth: u64,
    seen: u64,
}

impl Fault {
    /// Parses the value of a `fail=`, `lose_device=` or `abort=` entry
    /// (`key` is the entry's key).
    pub(super) fn parse(key: &str, value: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value.split(':').map(str::trim).collect();
        let max_parts = if key == "fail" { 3 } else { 2 };
        if parts.len() < 2 || parts.len() > max_parts {
            let form = if key == "fail" { "KIND:N[:CODE]" } else { "KIND:N" };
            return Err(format!("{key}={value}: expected {key}={form}"));
        }
        let kind = FaultKind::parse(parts[0]).ok_or_else(|| {
            let kinds: Vec<&str> = FaultKind::ALL.iter().map(|(_, n)| *n).collect();
            format!("{key}={value}: unknown kind {:?} (one of {})", parts[0], kinds.join(", "))
        })?;
        let nth = match parts[1].parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(format!("{key}={value}: N must be a call number >= 1")),
        };
        let action = match key {
            "fail" => FaultAction::Fail(parts.get(2).map(|c| parse_code(c)).transpose()?),
            "lose_device" => FaultAction::LoseDevice,
            _ => FaultAction::Abort,
        };
        Ok(Self { action, kind, nth, seen: 0 })
    }

    /// The entry as it was written, for messages.
    pub(super) fn describe(&self) -> String {
        let key = match self.action {
            FaultAction::Fail(_) => "fail",
            FaultAction::LoseDevice => "lose_device",
            FaultAction::Abort => "abort",
        };
        format!("{key}={}:{}", self.kind.name(), self.nth)
    }
}

/// A non-zero error code, in hex (`0x80300507`) or decimal (signed or unsigned 32-bit).
fn parse_code(text: &str) -> Result<axclError, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok().map(|c| c as i32),
        None => text.parse::<i32>().ok().or_else(|| text.parse::<u32>().ok().map(|c| c as i32)),
    };
    match parsed {
        Some(code) if code != 0 => Ok(code),
        _ => Err(format!("bad error code {text:?} (a non-zero 32-bit value, e.g. 0x80300507)")),
    }
}

/// The armed faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Faults {
    armed: Vec<Fault>,
}

impl Faults {
    pub(super) fn arm(&mut self, fault: Fault) {
        self.armed.push(fault);
    }

    pub(super) fn clear(&mut self) {
        self.armed.clear();
    }

    /// Counts `call` against every armed fault of a matching kind; returns the
    /// fault that fires on it, if any (the most severe when several do).
    pub(super) fn on_call(&mut self, call: Call) -> Option<Fault> {
        let mut fired: Option<Fault> = None;
        self.armed.retain_mut(|f| {
            if !f.kind.matches(call) {
                return true;
            }
            f.seen += 1;
            if f.seen < f.nth {
                return true;
            }
            if fired.as_ref().is_none_or(|best| f.action.severity() > best.action.severity()) {
                fired = Some(f.clone());
            }
            false
        });
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::super::calls::CopyKind;
    use super::*;

    #[test]
    fn parses_entries() {
        let f = Fault::parse("fail", "malloc:2:0x80300507").unwrap();
        assert_eq!((f.kind, f.nth, f.action), (FaultKind::Malloc, 2, FaultAction::Fail(Some(0x8030_0507u32 as i32))));
        assert_eq!(Fault::parse("abort", "any:1").unwrap().action, FaultAction::Abort);
        assert!(Fault::parse("lose_device", "h2d:1:5").is_err());
        assert!(Fault::parse("fail", "malloc:0").is_err());
        assert!(Fault::parse("fail", "mallocs:1").is_err());
        assert!(Fault::parse("fail", "malloc:1:0").is_err());
        assert_eq!(Fault::parse("fail", "bind:1:-5").unwrap().action, FaultAction::Fail(Some(-5)));
    }

    #[test]
    fn fires_once_on_the_nth_matching_call() {
        let mut faults = Faults::default();
        faults.arm(Fault::parse("fail", "h2d:2").unwrap());
        assert!(faults.on_call(Call::Memcpy(CopyKind::DeviceToHost)).is_none());
        assert!(faults.on_call(Call::Memcpy(CopyKind::HostToDevice)).is_none());
        assert!(faults.on_call(Call::Memcpy(CopyKind::HostToDevice)).is_some());
        assert!(faults.on_call(Call::Memcpy(CopyKind::HostToDevice)).is_none());
    }

    #[test]
    fn the_most_severe_fault_wins() {
        let mut faults = Faults::default();
        faults.arm(Fault::parse("fail", "any:1").unwrap());
        faults.arm(Fault::parse("lose_device", "execute:1").unwrap());
        assert_eq!(faults.on_call(Call::Execute).map(|f| f.action), Some(FaultAction::LoseDevice));
        assert!(faults.on_call(Call::SetDevice).is_none());
    }
}
