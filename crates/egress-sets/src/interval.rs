//! Intervals, ports and protocols.

use std::fmt;

// ---------------------------------------------------------------------------------------
// Intervals

/// A totally ordered point type with a least and a greatest element.
pub trait Point: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    const MIN: Self;
    const MAX: Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

macro_rules! impl_point {
    ($($t:ty),*) => {$(
        impl Point for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> { self.checked_add(1) }
            fn pred(self) -> Option<Self> { self.checked_sub(1) }
        }
    )*};
}
impl_point!(u16, u32, u128);

/// A finite union of inclusive intervals, kept sorted, disjoint and non-adjacent, so two
/// equal sets have equal representations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntervalSet<T: Point> {
    ranges: Vec<(T, T)>,
}

impl<T: Point> Default for IntervalSet<T> {
    fn default() -> Self {
        IntervalSet { ranges: Vec::new() }
    }
}

impl<T: Point> IntervalSet<T> {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every point of the type.
    pub fn full() -> Self {
        IntervalSet {
            ranges: vec![(T::MIN, T::MAX)],
        }
    }

    /// The inclusive interval `start..=end`; empty when `start > end`.
    pub fn interval(start: T, end: T) -> Self {
        if start > end {
            return Self::empty();
        }
        IntervalSet {
            ranges: vec![(start, end)],
        }
    }

    pub fn point(p: T) -> Self {
        Self::interval(p, p)
    }

    /// Builds a set from any inclusive intervals (overlapping, unsorted, or empty ones).
    pub fn from_intervals(intervals: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut ranges: Vec<(T, T)> = intervals.into_iter().filter(|(a, b)| a <= b).collect();
        ranges.sort();
        let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            if let Some(last) = out.last_mut() {
                let adjacent = last.1.succ().is_none_or(|next| start <= next);
                if adjacent {
                    if end > last.1 {
                        last.1 = end;
                    }
                    continue;
                }
            }
            out.push((start, end));
        }
        IntervalSet { ranges: out }
    }

    /// The intervals, sorted, disjoint and non-adjacent.
    pub fn intervals(&self) -> &[(T, T)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, p: T) -> bool {
        // Binary search for the last interval starting at or before p.
        let idx = self.ranges.partition_point(|(start, _)| *start <= p);
        idx.checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .is_some_and(|(_, end)| p <= *end)
    }

    /// The least point, if any.
    pub fn first(&self) -> Option<T> {
        self.ranges.first().map(|(start, _)| *start)
    }

    /// The greatest point, if any.
    pub fn last(&self) -> Option<T> {
        self.ranges.last().map(|(_, end)| *end)
    }

    pub fn union(&self, other: &Self) -> Self {
        Self::from_intervals(self.ranges.iter().chain(other.ranges.iter()).copied())
    }

    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (self.ranges.get(i), other.ranges.get(j)) {
            let start = a0.max(b0);
            let end = a1.min(b1);
            if start <= end {
                out.push((start, end));
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { ranges: out }
    }

    pub fn complement(&self) -> Self {
        let mut out = Vec::new();
        let mut next: Option<T> = Some(T::MIN);
        for &(start, end) in &self.ranges {
            if let Some(from) = next {
                if from < start {
                    if let Some(to) = start.pred() {
                        out.push((from, to));
                    }
                }
            }
            next = end.succ();
        }
        if let Some(from) = next {
            out.push((from, T::MAX));
        }
        IntervalSet { ranges: out }
    }

    pub fn difference(&self, other: &Self) -> Self {
        self.intersection(&other.complement())
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    pub fn intersects(&self, other: &Self) -> bool {
        let (mut i, mut j) = (0usize, 0usize);
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (self.ranges.get(i), other.ranges.get(j)) {
            if a0.max(b0) <= a1.min(b1) {
                return true;
            }
            if a1 < b1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// Interesting points for a brute-force oracle: the first and last point of each
    /// interval and their neighbours.
    pub fn boundary_points(&self) -> Vec<T> {
        let mut out = Vec::new();
        for &(start, end) in &self.ranges {
            out.push(start);
            out.push(end);
            out.extend(start.pred());
            out.extend(end.succ());
        }
        out
    }
}
