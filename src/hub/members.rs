//! A room's member set: clients keyed by id, each stored with the hash of its id.
//!
//! A room of many thousand members grows by rehashing every member, and a lookup compares
//! the candidates it probes. Keeping each member's hash beside it lets both work on the
//! table's own memory: a rehash moves entries without reading a single client, and a probe
//! reads a client's id only when the full 64-bit hash already matches.

use std::{hash::BuildHasher, sync::Arc};

use hashbrown::{HashTable, hash_table::Entry};

use super::{ById, Client};

/// One member: the client and the hash of its id under the room's hasher.
struct Member {
    hash: u64,
    client: Arc<Client>,
}

/// The members of one room (see the module docs).
#[derive(Default)]
pub(super) struct Members {
    table: HashTable<Member>,
    hasher: ById,
}

impl Members {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Adds `client`; false if a client of the same id is already a member.
    pub(super) fn insert(&mut self, client: Arc<Client>) -> bool {
        let hash = self.hash(&client.id);
        let id = &*client.id;
        match self
            .table
            .entry(hash, |m| m.hash == hash && *m.client.id == *id, |m| m.hash)
        {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(Member { hash, client });
                true
            }
        }
    }

    /// Removes the member of id `id`; false if there was none.
    pub(super) fn remove(&mut self, id: &str) -> bool {
        let hash = self.hash(id);
        match self
            .table
            .find_entry(hash, |m| m.hash == hash && &*m.client.id == id)
        {
            Ok(found) => {
                found.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the client of id `id` is a member.
    #[cfg(test)]
    pub(super) fn contains(&self, id: &str) -> bool {
        let hash = self.hash(id);
        self.table
            .find(hash, |m| m.hash == hash && &*m.client.id == id)
            .is_some()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every member, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.table.iter().map(|m| &m.client)
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
    fn insert_remove_contains_through_growth() {
        let ids = ClientIds::new();
        let clients: Vec<Arc<Client>> = (0..2_000).map(|_| client(&ids)).collect();
        let mut members = Members::default();
        for c in &clients {
            assert!(members.insert(c.clone()));
        }
        // The same id again, even from another `Arc`, is not a second member.
        assert!(!members.insert(clients[5].clone()));
        assert_eq!(members.len(), clients.len());
        for c in clients.iter().step_by(2) {
            assert!(members.remove(&c.id));
            assert!(!members.remove(&c.id));
        }
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(members.contains(&c.id), i % 2 == 1, "member {i}");
        }
        assert!(!members.contains(&ids.assign()));
        let mut left: Vec<&str> = members.iter().map(|c| &*c.id).collect();
        left.sort_unstable();
        let mut expected: Vec<&str> = clients.iter().skip(1).step_by(2).map(|c| &*c.id).collect();
        expected.sort_unstable();
        assert_eq!(left, expected);
    }
}
