//! Tables keyed by an id (a client's or a user's) that keep each entry's hash beside it: the
//! client and user indexes and every room's member set.
//!
//! These tables grow to one entry per connection (a room can hold every client). Growing
//! rehashes every entry, and a lookup compares the candidates it probes. With each entry's
//! hash stored beside it, both work on the table's own memory: a rehash moves entries without
//! reading a single client or id, and a probe reads an entry's id only when the full 64-bit
//! hash already matches.

use std::{hash::BuildHasher, sync::Arc};

use hashbrown::{HashTable, hash_table::Entry};

use super::{ById, Client, Lane};

/// What an [`IdTable`] is keyed by.
pub(super) trait HasId {
    /// The id this entry is filed under.
    fn id(&self) -> &str;
}

impl HasId for Arc<Client> {
    fn id(&self) -> &str {
        &self.id
    }
}

/// One entry and the hash of its id under the table's hasher.
struct Slot<T> {
    hash: u64,
    value: T,
}

impl<T: HasId> Slot<T> {
    /// Whether this is the entry of `id`, whose hash is `hash`: the id is read only when the
    /// hashes match.
    fn is(&self, hash: u64, id: &str) -> bool {
        self.hash == hash && self.value.id() == id
    }
}

/// A set of `T`s, at most one per id, hashed with `S` (see the module docs).
///
/// SECURITY: `S` must resist chosen keys wherever peers choose the ids ([`ById`] is for the
/// ids this server draws).
pub(super) struct IdTable<T, S = ById> {
    table: HashTable<Slot<T>>,
    hasher: S,
}

impl<T, S: Default> Default for IdTable<T, S> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            hasher: S::default(),
        }
    }
}

impl<T, S> IdTable<T, S> {
    /// An empty table hashing with `hasher` (a clone of another table's hasher files every id
    /// under the same hash in both).
    pub(super) fn with_hasher(hasher: S) -> Self {
        Self {
            table: HashTable::new(),
            hasher,
        }
    }
}

impl<T: HasId, S: BuildHasher> IdTable<T, S> {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Adds `value`; false, and `value` dropped, if its id is taken.
    pub(super) fn insert(&mut self, value: T) -> bool {
        let hash = self.hash(value.id());
        let id = value.id();
        match self.table.entry(hash, |s| s.is(hash, id), |s| s.hash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(Slot { hash, value });
                true
            }
        }
    }

    /// The entry of id `id`, made by `make` if there is none.
    pub(super) fn get_or_insert_with(&mut self, id: &str, make: impl FnOnce() -> T) -> &mut T {
        let hash = self.hash(id);
        let slot = match self.table.entry(hash, |s| s.is(hash, id), |s| s.hash) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(slot) => slot
                .insert(Slot {
                    hash,
                    value: make(),
                })
                .into_mut(),
        };
        &mut slot.value
    }

    pub(super) fn get(&self, id: &str) -> Option<&T> {
        let hash = self.hash(id);
        self.table.find(hash, |s| s.is(hash, id)).map(|s| &s.value)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let hash = self.hash(id);
        self.table
            .find_mut(hash, |s| s.is(hash, id))
            .map(|s| &mut s.value)
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Takes out the entry of id `id`.
    pub(super) fn remove(&mut self, id: &str) -> Option<T> {
        let hash = self.hash(id);
        let found = self.table.find_entry(hash, |s| s.is(hash, id)).ok()?;
        Some(found.remove().0.value)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.table.iter().map(|s| &s.value)
    }

    /// The entries whose id's hash falls in `lane`, in no particular order. Only the stored
    /// hashes are read to choose them.
    pub(super) fn iter_lane(&self, lane: Lane) -> impl Iterator<Item = &T> {
        self.table
            .iter()
            .filter(move |s| lane.holds(s.hash))
            .map(|s| &s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hub::ClientIds, session::Outbox};

    fn client(ids: &ClientIds) -> Arc<Client> {
        Arc::new(Client::new(ids.assign(), Outbox::new(1 << 20, false), 0))
    }

    #[test]
    fn insert_get_remove_through_growth() {
        let ids = ClientIds::new();
        let clients: Vec<Arc<Client>> = (0..2_000).map(|_| client(&ids)).collect();
        let mut table: IdTable<Arc<Client>> = IdTable::default();
        for c in &clients {
            assert!(table.insert(c.clone()));
        }
        // The same id again, even from another `Arc`, is not a second entry.
        let again = Arc::new(Client::new(
            clients[5].id.clone(),
            Outbox::new(1 << 20, false),
            0,
        ));
        assert!(!table.insert(again.clone()));
        assert!(Arc::ptr_eq(table.get(&again.id).unwrap(), &clients[5]));
        assert_eq!(table.len(), clients.len());
        for c in clients.iter().step_by(2) {
            assert!(Arc::ptr_eq(&table.remove(&c.id).unwrap(), c));
            assert!(table.remove(&c.id).is_none());
        }
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(table.contains(&c.id), i % 2 == 1, "entry {i}");
            assert_eq!(table.get_mut(&c.id).is_some(), i % 2 == 1, "entry {i}");
        }
        assert!(!table.contains(&ids.assign()));
        let mut left: Vec<&str> = table.iter().map(|c| &*c.id).collect();
        left.sort_unstable();
        let mut expected: Vec<&str> = clients.iter().skip(1).step_by(2).map(|c| &*c.id).collect();
        expected.sort_unstable();
        assert_eq!(left, expected);
        for c in clients.iter().skip(1).step_by(2) {
            table.remove(&c.id);
        }
        assert!(table.is_empty());
    }

    /// A user index keyed by names peers may choose, hashed with SipHash.
    #[test]
    fn get_or_insert_with_makes_an_entry_once() {
        struct Named(Box<str>, usize);
        impl HasId for Named {
            fn id(&self) -> &str {
                &self.0
            }
        }
        let mut table: IdTable<Named, std::hash::RandomState> = IdTable::default();
        for round in 0..3 {
            for i in 0..500 {
                let name = format!("user-{i}");
                let entry = table.get_or_insert_with(&name, || Named(name.as_str().into(), 0));
                assert_eq!(entry.1, round, "{name}");
                entry.1 += 1;
            }
        }
        assert_eq!(table.len(), 500);
        assert_eq!(table.get("user-7").map(|n| n.1), Some(3));
        assert!(table.get("user-500").is_none());
    }
}
