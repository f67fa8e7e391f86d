//! One exit convention for every command, so a script can tell "no" from "could not tell".

use std::process::ExitCode;

/// How `reprod` exits. Ordered by severity, so the worst of several outcomes is their `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: the answer is yes (reproducible, verified, identical, queued, nothing wrong).
    Success = 0,
    /// 1: the answer is no (another verdict, a signature refused, a difference, a problem found).
    Negative = 1,
    /// 2: no answer could be reached (bad input, infrastructure down, no verdict to ask about).
    Error = 2,
}

impl Exit {
    /// Yes or no, for a check that always reaches an answer.
    pub fn answer(yes: bool) -> Self {
        if yes {
            Self::Success
        } else {
            Self::Negative
        }
    }

    /// The library's reports give their own exit codes (`Verdict`, `DiffReport`, `VaryReport`); they
    /// follow this convention, and anything but 0 or 1 means no answer.
    pub fn from_code(code: impl Into<i32>) -> Self {
        match code.into() {
            0 => Self::Success,
            1 => Self::Negative,
            _ => Self::Error,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
