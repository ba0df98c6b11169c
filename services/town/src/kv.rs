//! The key-value surface the fold and the views run on, so the same pure
//! code runs over an in-memory map (tests, rebuild comparisons) and over the
//! sled store (through a write overlay committed atomically, see `store`).

use std::collections::BTreeMap;
use std::ops::Bound;

pub trait Kv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn del(&mut self, key: &[u8]);
    /// The last entry whose key starts with `prefix` and is at most (or,
    /// `Excluded`, below) `upper`, which starts with `prefix`: the record a
    /// key falls in where records are keyed by their first key
    /// ([`crate::evlog`]).
    fn floor(&self, prefix: &[u8], upper: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)>;
    /// `len` bytes of the value at `key` from `at`, if it is that long.
    fn get_at(&self, key: &[u8], at: usize, len: usize) -> Option<Vec<u8>> {
        self.get(key).and_then(|v| v.get(at..at + len).map(<[u8]>::to_vec))
    }
    /// Changes the value at `key` (an absent value is empty) by `change`;
    /// in place where the writes over a store already hold it, so a record
    /// the fold adds to event by event is not copied each time.
    fn update(&mut self, key: Vec<u8>, change: impl FnOnce(&mut Vec<u8>))
    where
        Self: Sized,
    {
        let mut value = self.get(&key).unwrap_or_default();
        change(&mut value);
        self.put(key, value);
    }
    /// Adds `bytes` to the end of the value at `key`.
    fn append(&mut self, key: Vec<u8>, bytes: &[u8])
    where
        Self: Sized,
    {
        self.update(key, |v| v.extend_from_slice(bytes));
    }
    /// Writes `bytes` over the value at `key` from `at`, lengthening it
    /// (with zeros) as needed.
    fn write_at(&mut self, key: Vec<u8>, at: usize, bytes: &[u8])
    where
        Self: Sized,
    {
        self.update(key, |v| {
            if v.len() < at + bytes.len() {
                v.resize(at + bytes.len(), 0);
            }
            v[at..at + bytes.len()].copy_from_slice(bytes);
        });
    }
}

/// [`Kv::get_at`] of writes made over a parent.
pub(crate) fn get_at_over(
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    parent: impl FnOnce() -> Option<Vec<u8>>,
    key: &[u8],
    at: usize,
    len: usize,
) -> Option<Vec<u8>> {
    match writes.get(key) {
        Some(value) => value.as_ref()?.get(at..at + len).map(<[u8]>::to_vec),
        None => parent(),
    }
}

/// [`Kv::update`] of writes (`None`: deleted) made over a parent that
/// holds `key` at `parent`: in place once the writes hold the value.
pub(crate) fn update_over(
    writes: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    parent: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    key: Vec<u8>,
    change: impl FnOnce(&mut Vec<u8>),
) {
    match writes.get_mut(&key) {
        Some(Some(value)) => change(value),
        Some(None) => {
            let mut value = Vec::new();
            change(&mut value);
            writes.insert(key, Some(value));
        }
        None => {
            let mut value = parent(&key).unwrap_or_default();
            change(&mut value);
            writes.insert(key, Some(value));
        }
    }
}

/// No key starting with `prefix` can lie within `upper`.
fn below_prefix(prefix: &[u8], upper: Bound<&[u8]>) -> bool {
    match upper {
        Bound::Included(u) => u < prefix,
        Bound::Excluded(u) => u <= prefix,
        Bound::Unbounded => false,
    }
}

/// [`Kv::floor`] of writes (`None`: deleted) made over a parent whose own
/// floor is `parent`: the later of the two, looking further down past a
/// key the writes deleted.
pub(crate) fn floor_over(
    writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    parent: impl Fn(Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)>,
    prefix: &[u8],
    upper: Bound<&[u8]>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut upper: Bound<Vec<u8>> = upper.map(<[u8]>::to_vec);
    loop {
        let bound = upper.as_ref().map(Vec::as_slice);
        if below_prefix(prefix, bound) {
            return None;
        }
        let below = parent(bound);
        let Some((key, value)) = writes.range::<[u8], _>((Bound::Included(prefix), bound)).next_back() else { return below };
        if below.as_ref().is_some_and(|(k, _)| k > key) {
            return below;
        }
        match value {
            Some(v) => return Some((key.clone(), v.clone())),
            None => upper = Bound::Excluded(key.clone()),
        }
    }
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
    fn floor(&self, prefix: &[u8], upper: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        if below_prefix(prefix, upper) {
            return None;
        }
        let (k, v) = self.0.range::<[u8], _>((Bound::Included(prefix), upper)).next_back()?;
        k.starts_with(prefix).then(|| (k.clone(), v.clone()))
    }
    fn get_at(&self, key: &[u8], at: usize, len: usize) -> Option<Vec<u8>> {
        self.0.get(key)?.get(at..at + len).map(<[u8]>::to_vec)
    }
    fn update(&mut self, key: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) {
        change(self.0.entry(key).or_default());
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
    fn floor(&self, prefix: &[u8], upper: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        floor_over(&self.writes, |upper| Kv::floor(self.tree, prefix, upper), prefix, upper)
    }
    fn get_at(&self, key: &[u8], at: usize, len: usize) -> Option<Vec<u8>> {
        get_at_over(&self.writes, || Kv::get_at(self.tree, key, at, len), key, at, len)
    }
    fn update(&mut self, key: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) {
        let tree = self.tree;
        update_over(&mut self.writes, |k| Kv::get(tree, k), key, change);
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
    fn get_at(&self, key: &[u8], at: usize, len: usize) -> Option<Vec<u8>> {
        sled::Tree::get(self, key).ok().flatten()?.get(at..at + len).map(<[u8]>::to_vec)
    }
    fn floor(&self, prefix: &[u8], upper: Bound<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        if below_prefix(prefix, upper) {
            return None;
        }
        let range = (Bound::Included(prefix.to_vec()), upper.map(<[u8]>::to_vec));
        let (k, v) = self.range::<Vec<u8>, _>(range).next_back()?.ok()?;
        k.starts_with(prefix).then(|| (k.to_vec(), v.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same entries in the in-memory model and in a fresh sled tree
    /// (kept in the returned directory).
    fn model_and_sled(entries: &[(&[u8], &[u8])]) -> (tempfile::TempDir, sled::Tree, MemKv) {
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::open(dir.path()).unwrap().open_tree("t").unwrap();
        let mut mem = MemKv::default();
        for (k, v) in entries {
            mem.put(k.to_vec(), v.to_vec());
            tree.insert(k, *v).unwrap();
        }
        (dir, tree, mem)
    }

    #[test]
    fn last_with_prefix_agrees_between_the_model_and_sled() {
        let (_dir, tree, mem) = model_and_sled(&[(b"fact/a/1", b"1"), (b"fact/a/2", b"2"), (b"fact/ab/9", b"x"), (b"fact/b/1", b"b")]);
        for prefix in [&b"fact/a/"[..], b"fact/ab/", b"fact/b/", b"fact/c/", b"fact/"] {
            assert_eq!(mem.last_with_prefix(prefix), KvScan::last_with_prefix(&tree, prefix), "{prefix:?}");
            assert_eq!(mem.last_with_prefix(prefix), mem.scan_prefix(prefix).pop().map(|(_, v)| v));
        }
        assert_eq!(mem.last_with_prefix(b"fact/a/"), Some(b"2".to_vec()));
    }

    #[test]
    fn floor_agrees_between_the_model_sled_and_writes_over_them() {
        let keys: [&[u8]; 6] = [b"evb/a/\x10", b"evb/a/\x20", b"evb/a/\x30", b"evb/ab/\x05", b"evb/b/\x01", b"evo/a"];
        let (_dir, tree, mem) = model_and_sled(&keys.map(|k| (k, k)));
        let cases: Vec<(&[u8], Bound<&[u8]>)> = vec![
            (b"evb/a/", Bound::Included(b"evb/a/\x25")),
            (b"evb/a/", Bound::Included(b"evb/a/\x20")),
            (b"evb/a/", Bound::Excluded(b"evb/a/\x20")),
            (b"evb/a/", Bound::Included(b"evb/a/\x05")),
            (b"evb/a/", Bound::Excluded(b"evb/a/")),
            (b"evb/a/", Bound::Included(b"evb/a/\xff")),
            (b"evb/b/", Bound::Included(b"evb/b/\x00")),
            (b"evb/c/", Bound::Included(b"evb/c/\xff")),
        ];
        for (prefix, upper) in &cases {
            assert_eq!(mem.floor(prefix, *upper), Kv::floor(&tree, prefix, *upper), "{prefix:?} {upper:?}");
        }
        assert_eq!(mem.floor(b"evb/a/", Bound::Included(b"evb/a/\x25")).map(|(k, _)| k), Some(b"evb/a/\x20".to_vec()));

        // Writes over both: a put and a delete, the same on each side.
        let mut over = Overlay::new(&tree);
        let mut mem_after = mem.clone();
        for kv in [&mut over as &mut dyn Kv, &mut mem_after] {
            kv.put(b"evb/a/\x28".to_vec(), b"new".to_vec());
            kv.del(b"evb/a/\x20");
            kv.del(b"evb/a/\x10");
        }
        for upper in [&b"evb/a/\x25"[..], b"evb/a/\x29", b"evb/a/\x20", b"evb/a/\x2f", b"evb/a/\xff"] {
            let want = mem_after.floor(b"evb/a/", Bound::Included(upper));
            assert_eq!(over.floor(b"evb/a/", Bound::Included(upper)), want, "{upper:?}");
        }
        assert_eq!(over.floor(b"evb/a/", Bound::Included(b"evb/a/\x25")), None, "both below were deleted");
        assert_eq!(over.floor(b"evb/a/", Bound::Included(b"evb/a/\x29")).map(|(_, v)| v), Some(b"new".to_vec()));
    }

    #[test]
    fn updates_over_sled_agree_with_the_model() {
        let (_dir, tree, mut mem) = model_and_sled(&[(b"a", b"12"), (b"b", b"x")]);
        fn change(kv: &mut impl Kv) {
            kv.append(b"a".to_vec(), b"3");
            kv.append(b"a".to_vec(), b"45");
            kv.del(b"b");
            kv.append(b"b".to_vec(), b"y");
            kv.append(b"c".to_vec(), b"new");
            kv.write_at(b"d".to_vec(), 2, b"zz");
        }
        let mut over = Overlay::new(&tree);
        change(&mut over);
        change(&mut mem);
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            assert_eq!(over.get(k), mem.get(k), "{k:?}");
        }
        assert_eq!(mem.get(b"d"), Some(b"\0\0zz".to_vec()));
        assert_eq!(mem.get(b"a"), Some(b"12345".to_vec()));
        assert_eq!(mem.get(b"b"), Some(b"y".to_vec()));
        assert_eq!(tree.get(b"a").unwrap().as_deref(), Some(&b"12"[..]), "nothing reaches sled before the batch");
    }
}
