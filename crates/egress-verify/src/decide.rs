//! One place that answers set questions, by the fast path, by Z3, or by both.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sets::{
    box_difference_witness, box_intersection_witness, box_meet, ConnBox, Connection,
};
use crate::smt::{solve, solve_any, SmtAnswer};

/// Which decision procedure answers set questions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Exact set algebra; Z3 only where the host search exceeds its budget.
    #[default]
    Fast,
    /// Z3 for every question.
    Smt,
    /// Both for every question; a disagreement is reported as unknown (and is a bug).
    Both,
}

/// The answer to "is there a connection in A but not in B" (or "in both").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// No such connection: the property holds for this question.
    Holds,
    /// Such a connection, checked concretely against the boxes.
    Witness(Connection),
    /// Neither procedure could decide, with why.
    Unknown(String),
}

#[derive(Debug, Default)]
pub struct Decider {
    pub engine: Engine,
    pub timeout_ms: u64,
    pub budget: usize,
    pub fast: AtomicUsize,
    pub smt: AtomicUsize,
}

impl Decider {
    pub fn new(engine: Engine, timeout_ms: u64, budget: usize) -> Decider {
        Decider {
            engine,
            timeout_ms,
            budget,
            fast: AtomicUsize::new(0),
            smt: AtomicUsize::new(0),
        }
    }

    fn from_smt(answer: SmtAnswer) -> Answer {
        match answer {
            SmtAnswer::Unsat => Answer::Holds,
            SmtAnswer::Witness(w) => Answer::Witness(w),
            SmtAnswer::Unknown(why) => Answer::Unknown(format!("Z3: {why}")),
        }
    }

    fn combine(&self, fast: Option<Answer>, smt: impl FnOnce() -> Answer) -> Answer {
        match (self.engine, fast) {
            (Engine::Fast, Some(answer)) => {
                self.fast.fetch_add(1, Ordering::Relaxed);
                answer
            }
            (Engine::Both, Some(answer)) => {
                self.fast.fetch_add(1, Ordering::Relaxed);
                self.smt.fetch_add(1, Ordering::Relaxed);
                let other = smt();
                match (&answer, &other) {
                    (_, Answer::Unknown(_)) => answer,
                    (Answer::Holds, Answer::Holds) | (Answer::Witness(_), Answer::Witness(_)) => {
                        answer
                    }
                    _ => Answer::Unknown(format!(
                        "internal error: the set algebra and Z3 disagree ({answer:?} vs {other:?})"
                    )),
                }
            }
            _ => {
                self.smt.fetch_add(1, Ordering::Relaxed);
                smt()
            }
        }
    }

    /// A connection in `b` outside every box of `union`.
    pub fn difference(&self, b: &ConnBox, union: &[&ConnBox]) -> Answer {
        let fast = match self.engine {
            Engine::Smt => None,
            _ => box_difference_witness(b, union, self.budget)
                .ok()
                .map(|w| w.map_or(Answer::Holds, Answer::Witness)),
        };
        let answer = self.combine(fast, || Self::from_smt(solve(&[b], union, self.timeout_ms)));
        // Replay against the boxes themselves: a witness that is not in `b \ union` is a bug.
        match answer {
            Answer::Witness(w) if !b.contains(&w) || union.iter().any(|u| u.contains(&w)) => {
                Answer::Unknown(format!("internal error: spurious witness {w} suppressed"))
            }
            other => other,
        }
    }

    /// A connection in both `b` and `within`, outside every box of `union`.
    pub fn difference_within(&self, b: &ConnBox, within: &ConnBox, union: &[&ConnBox]) -> Answer {
        let fast = match self.engine {
            Engine::Smt => None,
            _ => box_meet(b, within).and_then(|m| {
                box_difference_witness(&m, union, self.budget)
                    .ok()
                    .map(|w| w.map_or(Answer::Holds, Answer::Witness))
            }),
        };
        let answer = self.combine(fast, || {
            Self::from_smt(solve(&[b, within], union, self.timeout_ms))
        });
        match answer {
            Answer::Witness(w)
                if !b.contains(&w)
                    || !within.contains(&w)
                    || union.iter().any(|u| u.contains(&w)) =>
            {
                Answer::Unknown(format!("internal error: spurious witness {w} suppressed"))
            }
            other => other,
        }
    }

    /// A connection in both boxes.
    pub fn intersection(&self, a: &ConnBox, b: &ConnBox) -> Answer {
        let fast = match self.engine {
            Engine::Smt => None,
            _ => box_intersection_witness(a, b, self.budget)
                .ok()
                .map(|w| w.map_or(Answer::Holds, Answer::Witness)),
        };
        let answer = self.combine(fast, || {
            Self::from_smt(solve(&[a, b], &[], self.timeout_ms))
        });
        match answer {
            Answer::Witness(w) if !a.contains(&w) || !b.contains(&w) => {
                Answer::Unknown(format!("internal error: spurious witness {w} suppressed"))
            }
            other => other,
        }
    }

    /// A connection in some box of `any_of` outside every box of `union`, by one Z3 call
    /// for the whole set (the `--engine smt` path asks this once per agent before it asks
    /// destination by destination). The witness is replayed against the boxes.
    pub fn any_difference_smt(&self, any_of: &[&ConnBox], union: &[&ConnBox]) -> Answer {
        self.smt.fetch_add(1, Ordering::Relaxed);
        match Self::from_smt(solve_any(any_of, union, self.timeout_ms)) {
            Answer::Witness(w)
                if !any_of.iter().any(|b| b.contains(&w))
                    || union.iter().any(|u| u.contains(&w)) =>
            {
                Answer::Unknown(format!("internal error: spurious witness {w} suppressed"))
            }
            other => other,
        }
    }
}
