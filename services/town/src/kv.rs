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

    /// The value of the last entry whose key starts with `prefix`. Facts are
    /// stored under `<fact>/<seq>` and the highest seq wins, so this is the
    /// read the views make most: implementations read one entry, not all.
    fn last_with_prefix(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        self.scan_prefix(prefix).pop().map(|(_, v)| v)
    }
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

    fn last_with_prefix(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        self.0.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).last().map(|(_, v)| v.clone())
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

    fn last_with_prefix(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        // One step from the end of the range instead of copying all of it.
        sled::Tree::scan_prefix(self, prefix).next_back().and_then(Result::ok).map(|(_, v)| v.to_vec())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_with_prefix_agrees_between_the_model_and_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut mem = MemKv::default();
        for (k, v) in [(&b"fact/a/1"[..], &b"1"[..]), (b"fact/a/2", b"2"), (b"fact/ab/9", b"x"), (b"fact/b/1", b"b")] {
            mem.put(k.to_vec(), v.to_vec());
            tree.insert(k, v).unwrap();
        }
        for prefix in [&b"fact/a/"[..], b"fact/ab/", b"fact/b/", b"fact/c/", b"fact/"] {
            assert_eq!(mem.last_with_prefix(prefix), KvScan::last_with_prefix(&tree, prefix), "{prefix:?}");
            assert_eq!(mem.last_with_prefix(prefix), mem.scan_prefix(prefix).pop().map(|(_, v)| v));
        }
        assert_eq!(mem.last_with_prefix(b"fact/a/"), Some(b"2".to_vec()));
    }
}
