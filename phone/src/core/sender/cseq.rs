//! The one owner of every Call-ID's CSeq numbers: a refresh and a challenged retry on the same Call-ID take them from here, so no two requests are numbered alike.

use std::collections::HashMap;

/// The next local CSeq number of each Call-ID the phone sends on (RFC 3261 §8.1.1.5, §12.2.1.1:
/// every new request in a dialog or a registration's Call-ID carries a number above the last).
///
/// Registrations, subscriptions and calls ask for a number when they build a request, and the
/// sender asks when it re-sends a request with credentials (§22.2). ACK and CANCEL carry the
/// INVITE's number and take none.
#[derive(Debug, Default)]
pub(crate) struct CSeqNumbers {
    next: HashMap<String, u32>,
}

impl CSeqNumbers {
    /// Takes the next number on `call_id`: 1 on a Call-ID not seen before.
    pub fn take(&mut self, call_id: &str) -> u32 {
        let next = self.next.entry(call_id.to_owned()).or_insert(1);
        let seq = *next;
        *next = next.saturating_add(1);
        seq
    }

    /// The next number on `call_id` if the Call-ID is still numbered here: a request whose
    /// Call-ID was released (its call or dialog over) is not numbered again.
    pub fn take_existing(&mut self, call_id: &str) -> Option<u32> {
        let next = self.next.get_mut(call_id)?;
        let seq = *next;
        *next = next.saturating_add(1);
        Some(seq)
    }

    /// Forgets a Call-ID whose dialog has ended, so the table holds only live ones; nothing may
    /// be sent on it afterwards.
    pub fn release(&mut self, call_id: &str) {
        self.next.remove(call_id);
    }

    /// How many Call-IDs are numbered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.next.len()
    }
}

#[cfg(test)]
mod tests {
    use super::CSeqNumbers;

    #[test]
    fn each_call_id_counts_up_from_one_on_its_own() {
        let mut numbers = CSeqNumbers::default();
        assert_eq!([numbers.take("a"), numbers.take("a"), numbers.take("b"), numbers.take("a")], [1, 2, 1, 3]);
        numbers.release("a");
        assert_eq!(numbers.len(), 1);
        assert_eq!(numbers.take_existing("a"), None, "a released Call-ID is not numbered again");
        assert_eq!(numbers.take_existing("b"), Some(2));
    }
}
