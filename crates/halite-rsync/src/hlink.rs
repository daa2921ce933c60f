//! Hard-linked files on the receiving side (`-H`): which member of each linked set is
//! transferred, and when the others are linked to it.
//!
//! The file list marks the members of a set (protocol ≥ 30: each later member names the
//! list index of the first). The receiver's generator walks the list in order and asks
//! [`HardLinks::turn`] what to do with each member, as the reference's hlink.c decides:
//!
//! - a member with no regular file here yet, and not the set's last, is *deferred*: a
//!   later member may already be here and serve as the set's copy;
//! - the first member that is here, or the last one whatever it is, is a *candidate*:
//!   processed as an ordinary file (left alone when up to date, transferred otherwise);
//! - once a candidate is in place (up to date, or received and landed) every deferred
//!   or waiting member is linked to it, and later members are linked at once;
//! - members met while the candidate is being received wait for it.
//!
//! A candidate skipped for an ordinary reason (`--max-size`, `--update`, a daemon
//! exclude...) hands the set's last place to the last deferred member, which is then
//! transferred, as the reference's handle_skipped_hlink() does. A candidate whose
//! transfer fails leaves its waiting members as they were (the failure is already an
//! error for the client), as with the reference.
//!
//! Pure bookkeeping over list indexes: the caller stats, links and itemizes.

use crate::flist::FileEntry;
use std::collections::HashMap;

/// The sets of a received (sorted) list and where each stands.
#[derive(Debug, Default)]
pub struct HardLinks {
    /// Each member's set.
    set_of: HashMap<u32, u32>,
    sets: Vec<Set>,
}

#[derive(Debug)]
struct Set {
    /// The member processed last: transferred even when nothing is here.
    last: u32,
    state: State,
}

#[derive(Debug)]
enum State {
    /// No copy to link to yet; `deferred` members wait for one (in list order).
    Open { deferred: Vec<u32> },
    /// `leader` is being received; `waiting` (met since, in list order) and `deferred`
    /// (met before) are linked to it once it lands.
    Sent { leader: u32, waiting: Vec<u32>, deferred: Vec<u32> },
    /// `leader` is in place: members are linked to it.
    Done { leader: u32 },
    /// The transfer of the set's copy failed: the rest are left as they are.
    Failed,
}

/// What the generator does with a list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Not in a set: an ordinary file.
    Alone,
    /// Processed as an ordinary file, after [`HardLinks::defer`] when nothing is here
    /// and `last` is false. Its outcome is reported with [`HardLinks::sent`],
    /// [`HardLinks::in_place`] or [`HardLinks::skipped`].
    Candidate { last: bool },
    /// To be linked to this member, which is in place.
    LinkTo(u32),
    /// Left for now: linked once the set's copy lands (or never, if it fails).
    Waiting,
}

impl HardLinks {
    /// The sets of `list` (sorted as both sides index it): regular files sharing a
    /// hard-link key. A set with one member in the list is an ordinary file.
    pub fn new(list: &[FileEntry]) -> HardLinks {
        let mut by_key: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
        for (i, e) in list.iter().enumerate() {
            if let (true, Some(key)) = (e.is_reg(), e.hardlink_key) {
                by_key.entry(key).or_default().push(i as u32);
            }
        }
        let mut links = HardLinks::default();
        let mut sets: Vec<Vec<u32>> = by_key.into_values().filter(|m| m.len() > 1).collect();
        // Deterministic set numbers (the map's order is not).
        sets.sort_unstable_by_key(|m| m[0]);
        for members in sets {
            let set = links.sets.len() as u32;
            for &m in &members {
                links.set_of.insert(m, set);
            }
            let Some(&last) = members.last() else { continue };
            links.sets.push(Set { last, state: State::Open { deferred: Vec::new() } });
        }
        links
    }

    /// Whether any entry is in a set.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    fn set(&mut self, ndx: u32) -> Option<&mut Set> {
        let set = *self.set_of.get(&ndx)?;
        self.sets.get_mut(set as usize)
    }

    /// What to do with entry `ndx`, met in list order.
    pub fn turn(&mut self, ndx: u32) -> Turn {
        let Some(set) = self.set(ndx) else { return Turn::Alone };
        match &mut set.state {
            State::Open { .. } => Turn::Candidate { last: ndx == set.last },
            State::Sent { waiting, .. } => {
                waiting.push(ndx);
                Turn::Waiting
            }
            State::Done { leader } => Turn::LinkTo(*leader),
            State::Failed => Turn::Waiting,
        }
    }

    /// A candidate with nothing here that is not its set's last: it waits for the
    /// set's copy.
    pub fn defer(&mut self, ndx: u32) {
        if let Some(Set { state: State::Open { deferred }, .. }) = self.set(ndx) {
            deferred.push(ndx);
        }
    }

    /// A candidate was asked for: members met until it lands wait for it.
    pub fn sent(&mut self, ndx: u32) {
        if let Some(set) = self.set(ndx) {
            if let State::Open { deferred } = &mut set.state {
                let deferred = std::mem::take(deferred);
                set.state = State::Sent { leader: ndx, waiting: Vec::new(), deferred };
            }
        }
    }

    /// Member `ndx` is in place (up to date here, or received and landed): the members
    /// to link to it now, in the reference's order (its chain of links: those that
    /// waited during the transfer as they came, then the deferred ones, last first).
    /// Anything else (an entry in no set, a member that is not the set's candidate)
    /// gives none.
    pub fn in_place(&mut self, ndx: u32) -> Vec<u32> {
        let Some(set) = self.set(ndx) else { return Vec::new() };
        let (mut members, deferred) = match &mut set.state {
            State::Open { deferred } => (Vec::new(), std::mem::take(deferred)),
            State::Sent { leader, waiting, deferred } if *leader == ndx => {
                (std::mem::take(waiting), std::mem::take(deferred))
            }
            _ => return Vec::new(),
        };
        set.state = State::Done { leader: ndx };
        members.extend(deferred.into_iter().rev());
        // (A member is never linked to itself, whatever order the caller reports in.)
        members.retain(|&m| m != ndx);
        members
    }

    /// A candidate was left alone for an ordinary reason: when it was its set's last
    /// and members were deferred, the last of them takes its place and is processed
    /// now (returned), as the set's last.
    pub fn skipped(&mut self, ndx: u32) -> Option<u32> {
        let set = self.set(ndx)?;
        if set.last != ndx {
            return None;
        }
        let State::Open { deferred } = &mut set.state else { return None };
        let next = deferred.pop()?;
        set.last = next;
        Some(next)
    }

    /// The client could not send candidate `ndx` (MSG_NO_SEND). As the reference's
    /// handle_skipped_hlink(): when it was its set's last and members were only
    /// deferred (none waits on it), the last of those takes its place and is processed
    /// now (returned); otherwise the set is left as it is.
    pub fn not_sent(&mut self, ndx: u32) -> Option<u32> {
        let set = self.set(ndx)?;
        let State::Sent { leader, waiting, deferred } = &mut set.state else { return None };
        if *leader != ndx {
            return None;
        }
        if set.last == ndx && waiting.is_empty() {
            if let Some(next) = deferred.pop() {
                set.last = next;
                set.state = State::Open { deferred: std::mem::take(deferred) };
                return Some(next);
            }
        }
        set.state = State::Failed;
        None
    }

    /// The transfer of candidate `ndx` failed for good.
    pub fn failed(&mut self, ndx: u32) {
        if let Some(set) = self.set(ndx) {
            if matches!(set.state, State::Sent { leader, .. } if leader == ndx) {
                set.state = State::Failed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flist::S_IFREG;

    /// A sorted list; `sets[i]` is entry i's key (None: not hard-linked).
    fn list(sets: &[Option<u64>]) -> Vec<FileEntry> {
        sets.iter()
            .enumerate()
            .map(|(i, key)| FileEntry {
                name: format!("f{i}").into_bytes(),
                mode: S_IFREG | 0o644,
                hardlink_key: key.map(|k| (0, k)),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn nothing_here_the_last_member_is_transferred_and_the_rest_linked_to_it() {
        // The reference's output for a/b/d/c: "<f d/c", "hf b => d/c", "hf a => d/c".
        let mut h = HardLinks::new(&list(&[Some(7), Some(7), None, Some(7)]));
        assert_eq!(h.turn(0), Turn::Candidate { last: false });
        h.defer(0);
        assert_eq!(h.turn(1), Turn::Candidate { last: false });
        h.defer(1);
        assert_eq!(h.turn(2), Turn::Alone);
        assert_eq!(h.turn(3), Turn::Candidate { last: true });
        h.sent(3);
        assert_eq!(h.in_place(3), vec![1, 0]);
        assert_eq!(h.in_place(3), Vec::<u32>::new(), "linked once");
    }

    #[test]
    fn a_first_member_already_here_is_the_copy() {
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1)]));
        assert_eq!(h.turn(0), Turn::Candidate { last: false });
        // Up to date here: nothing waits yet, later members link to it at once.
        assert!(h.in_place(0).is_empty());
        assert_eq!(h.turn(1), Turn::LinkTo(0));
        assert_eq!(h.turn(2), Turn::LinkTo(0));
    }

    #[test]
    fn members_met_during_the_transfer_wait_for_it() {
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1)]));
        assert_eq!(h.turn(0), Turn::Candidate { last: false });
        h.sent(0);
        assert_eq!(h.turn(1), Turn::Waiting);
        assert_eq!(h.turn(2), Turn::Waiting);
        assert!(h.in_place(1).is_empty(), "only the copy being received lands the set");
        assert_eq!(h.in_place(0), vec![1, 2]);
    }

    #[test]
    fn waiting_members_come_first_in_list_order_then_deferred_ones_last_first() {
        // The reference's chain: c -> d -> e -> b -> a.
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1), Some(1), Some(1)]));
        for deferred in [0, 1] {
            h.turn(deferred);
            h.defer(deferred);
        }
        assert_eq!(h.turn(2), Turn::Candidate { last: false });
        h.sent(2);
        assert_eq!(h.turn(3), Turn::Waiting);
        assert_eq!(h.turn(4), Turn::Waiting);
        assert_eq!(h.in_place(2), vec![3, 4, 1, 0]);
    }

    #[test]
    fn a_skipped_last_member_hands_its_place_to_the_last_deferred_one() {
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1)]));
        h.turn(0);
        h.defer(0);
        h.turn(1);
        h.defer(1);
        assert_eq!(h.turn(2), Turn::Candidate { last: true });
        assert_eq!(h.skipped(2), Some(1));
        // Skipped again (say it is over --max-size too): the first one is left.
        assert_eq!(h.skipped(1), Some(0));
        assert_eq!(h.skipped(0), None);
        // A candidate that is not its set's last hands nothing on.
        let mut h = HardLinks::new(&list(&[Some(1), Some(1)]));
        h.turn(0);
        assert_eq!(h.skipped(0), None);
        assert_eq!(h.turn(1), Turn::Candidate { last: true });
    }

    #[test]
    fn a_copy_the_client_could_not_send_hands_its_set_to_a_deferred_member() {
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1)]));
        for deferred in [0, 1] {
            h.turn(deferred);
            h.defer(deferred);
        }
        assert_eq!(h.turn(2), Turn::Candidate { last: true });
        h.sent(2);
        assert_eq!(h.not_sent(2), Some(1));
        assert_eq!(h.turn(1), Turn::Candidate { last: true });
        h.sent(1);
        assert_eq!(h.in_place(1), vec![0]);
        // With a member waiting on it, the set is left alone.
        let mut h = HardLinks::new(&list(&[Some(1), Some(1)]));
        h.turn(0);
        h.sent(0);
        assert_eq!(h.turn(1), Turn::Waiting);
        assert_eq!(h.not_sent(0), None);
        assert!(h.in_place(0).is_empty());
    }

    #[test]
    fn a_failed_copy_leaves_its_set_alone() {
        let mut h = HardLinks::new(&list(&[Some(1), Some(1), Some(1)]));
        h.turn(0);
        h.sent(0);
        assert_eq!(h.turn(1), Turn::Waiting);
        h.failed(0);
        assert_eq!(h.turn(2), Turn::Waiting);
        assert!(h.in_place(0).is_empty());
    }

    #[test]
    fn singletons_and_other_types_are_ordinary_entries() {
        let mut l = list(&[Some(1), Some(2), Some(2)]);
        l[2].mode = crate::flist::S_IFLNK | 0o777;
        let mut h = HardLinks::new(&l);
        assert!(h.is_empty());
        assert_eq!(h.turn(0), Turn::Alone);
        assert_eq!(h.turn(1), Turn::Alone);
        assert_eq!(h.turn(2), Turn::Alone);
        // Reports about entries in no set change nothing.
        h.defer(0);
        h.sent(0);
        h.failed(0);
        assert!(h.in_place(0).is_empty());
        assert_eq!(h.skipped(0), None);
    }
}
