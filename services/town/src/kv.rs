//! The key-value surface the fold and the views run on, so the same pure
//! code runs over an in-memory map (tests, rebuild comparisons) and over the
//! sled store (through a write overlay committed atomically, see `store`).

use std::collections::BTreeMap;

pub trait Kv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn del(&mut self, key: &[u8]);
}

pub trait KvScan {
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// A plain in-memory map: the model the sled store is tested against.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemKv(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.insert(key, value);
    }
    fn del(&mut self, key: &[u8]) {
        self.0.remove(key);
    }
}

impl KvScan for MemKv {
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Writes buffered over a sled tree; read-your-writes; committed whole with
/// one `apply_batch`, which sled applies atomically.
pub struct Overlay<'a> {
    pub tree: &'a sled::Tree,
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    pub fn new(tree: &'a sled::Tree) -> Self {
        Overlay { tree, writes: BTreeMap::new() }
    }

    pub fn into_batch(self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        b
    }
}

impl Kv for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.tree.get(key).ok().flatten().map(|v| v.to_vec()),
        }
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }
    fn del(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
}

impl KvScan for sled::Tree {
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        sled::Tree::scan_prefix(self, prefix).filter_map(Result::ok).map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }
}

/// Direct access to a sled tree; the store reads through this and writes
/// only through [`Overlay`] batches.
impl Kv for sled::Tree {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        sled::Tree::get(self, key).ok().flatten().map(|v| v.to_vec())
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let _ = self.insert(key, value);
    }
    fn del(&mut self, key: &[u8]) {
        let _ = self.remove(key);
    }
}
