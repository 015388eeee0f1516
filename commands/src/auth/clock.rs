//! The handlers' clock. Production reads the system clock; tests hold a clock they can move,
//! so "after the lock expires" is a test, not a fifteen-minute wait.

use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Clock {
    /// `None` = system time; `Some` = a test clock shared by everyone holding this `Clock`.
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A test clock starting at `start`.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock { manual: Some(Arc::new(Mutex::new(start))) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(t) => *t.lock().expect("clock lock"),
            None => Utc::now(),
        }
    }

    /// Move a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.manual {
            *t.lock().expect("clock lock") += by;
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", if self.manual.is_some() { "manual" } else { "system" })
    }
}
