//! The figures cache over the real sled store: a year's figures are computed
//! once per committed batch, handed out unchanged until the next batch, and
//! always equal to computing them afresh.

use std::sync::Arc;

use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::subject::{self, WardPath};
use treem_town::fold::Ctx;
use treem_town::projection::indicators::{self, FiguresCache};
use treem_town::store::TownStore;

fn ctx() -> Ctx {
    Ctx {
        province: "70".into(),
        town: "690".into(),
        hierarchy: Hierarchy::shipped(),
        catalogue: Catalogue::shipped(),
        provenance: treem_town::provenance::WardKeys::not_required(),
    }
}

fn wards() -> Vec<String> {
    ["25320", "25324", "25325", "25326", "25333", "25336"].map(String::from).to_vec()
}

fn message(ward: &str, seq: u64, numerator: u64) -> (String, Vec<u8>, u64) {
    let env = Envelope::new(
        &WardPath::new("70", "690", ward),
        seq,
        "test",
        Event::IndicatorObserved(IndicatorObserved {
            indicator: "4a".into(),
            year: 2025,
            numerator,
            denominator: Some(1000),
            source: "health_centre".into(),
        }),
    );
    (subject::event_subject(&env), env.encode(), seq)
}

#[test]
fn figures_are_computed_once_per_batch_and_match_a_fresh_computation() {
    let dir = tempfile::tempdir().unwrap();
    let store = TownStore::open(dir.path()).unwrap();
    let (ctx, wards, cache) = (ctx(), wards(), FiguresCache::default());
    let fresh = |store: &TownStore| indicators::figures(&store.tree, &ctx.catalogue, &wards, 2025);

    assert!(cache.cached(&store, 2025).is_none(), "nothing is cached before the first request");
    let empty = cache.get(&store, &ctx.catalogue, &wards, 2025);
    assert_eq!(*empty, fresh(&store));
    assert!(!empty.town.contains_key("4a"));

    store.apply_batch(&ctx, &[message("25320", 1, 70)]).unwrap();
    assert!(cache.cached(&store, 2025).is_none(), "a committed batch makes the cached figures stale");
    let first = cache.get(&store, &ctx.catalogue, &wards, 2025);
    assert_eq!(*first, fresh(&store));
    assert_eq!(first.town["4a"].numerator, 70);
    let again = cache.get(&store, &ctx.catalogue, &wards, 2025);
    assert!(Arc::ptr_eq(&first, &again), "between batches every reader gets the same computation");
    assert!(Arc::ptr_eq(&first, &cache.cached(&store, 2025).unwrap()));

    store.apply_batch(&ctx, &[message("25320", 2, 75), message("25324", 1, 5)]).unwrap();
    let second = cache.get(&store, &ctx.catalogue, &wards, 2025);
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(*second, fresh(&store));
    assert_eq!(second.town["4a"].numerator, 80, "the ward's newest figure (75) and the other ward's (5)");
    // Other years have their own slots.
    assert_eq!(*cache.get(&store, &ctx.catalogue, &wards, 2024), indicators::figures(&store.tree, &ctx.catalogue, &wards, 2024));
}
