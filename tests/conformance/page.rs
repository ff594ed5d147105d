//! A group's admin page (`Store::group_page`): the store lists only the numbers a filter lets
//! through, up to its limit, in the group's order, and counts every state from the same
//! picture, on every store.

use access_broker::domain::{AccessNumber, NumberPolicy};
use access_broker::store::{NumbersFilter, RemoveNumber, StateKind};

use crate::lifecycle::with_policy;
use crate::support::TestStore;
use crate::{SEC, matches, plain_match, reserve_fresh};

crate::conformance!(a_page_lists_what_its_filter_lets_through);

async fn a_page_lists_what_its_filter_lets_through(t: TestStore) {
    let policy = NumberPolicy {
        cool_down: 10,
        quarantine_after_stray_calls: 1,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 6, policy).await;
    let all = t.store.group(&g).await.expect("page").expect("group");
    let n: Vec<AccessNumber> = all.numbers.iter().map(|v| v.number.clone()).collect();
    // Round-robin lends the first three in order: one stays reserved, one is matched (it
    // cools down), one is removed while held (it retires). A stray call quarantines the
    // fourth; the last two stay free.
    let held = reserve_fresh(&t, &g).await;
    let matched = reserve_fresh(&t, &g).await;
    let retiring = reserve_fresh(&t, &g).await;
    assert_eq!(
        [&held.number, &matched.number, &retiring.number],
        [&n[0], &n[1], &n[2]]
    );
    assert!(matches(&t, &matched.number).await);
    let removed = t.store.remove_number(&g, &retiring.number).await;
    assert_eq!(removed.expect("remove"), RemoveNumber::Retiring);
    let stray = t.store.match_reservation(plain_match(&n[3])).await;
    assert!(stray.is_ok(), "{stray:?}");
    t.advance(SEC);

    let page_from =
        |state: Option<StateKind>, digits: Option<&str>, limit: Option<usize>, offset: u64| {
            let filter = NumbersFilter {
                state,
                digits: digits.map(str::to_owned),
                limit,
                offset,
            };
            let (t, g) = (&t, &g);
            async move {
                let page = t.store.group_page(g, &filter).await.expect("page");
                let page = page.expect("group");
                let s = &page.stats;
                let counts = (
                    s.size,
                    s.free,
                    s.reserved,
                    s.cooling,
                    s.quarantined,
                    s.retiring,
                );
                assert_eq!(
                    counts,
                    (5, 2, 1, 1, 1, 1),
                    "the group's counts, whatever is listed"
                );
                let listed: Vec<(AccessNumber, StateKind)> = page
                    .numbers
                    .iter()
                    .map(|v| (v.number.clone(), v.state.kind()))
                    .collect();
                (page.listed, listed)
            }
        };
    let page = |state, digits, limit| page_from(state, digits, limit, 0);
    let kinds = [
        (StateKind::Reserved, 0),
        (StateKind::Cooling, 1),
        (StateKind::Retiring, 2),
        (StateKind::Quarantined, 3),
    ];
    for (kind, i) in kinds {
        let want = (1, vec![(n[i].clone(), kind)]);
        assert_eq!(page(Some(kind), None, None).await, want, "{kind:?}");
    }
    let free = vec![
        (n[4].clone(), StateKind::Free),
        (n[5].clone(), StateKind::Free),
    ];
    assert_eq!(
        page(Some(StateKind::Free), None, None).await,
        (2, free.clone())
    );
    assert_eq!(
        page(Some(StateKind::Free), None, Some(1)).await,
        (2, free[..1].to_vec()),
        "listed counts past the limit"
    );
    let last = n[5].as_str();
    let digits = &last[last.len() - 2..];
    assert_eq!(
        page(None, Some(digits), None).await,
        (1, free[1..].to_vec())
    );
    let (listed, none) = page(None, None, Some(0)).await;
    assert_eq!((listed, none.len()), (6, 0), "counts only");
    let (listed, every) = page(None, None, None).await;
    assert_eq!(listed, 6);
    let order: Vec<&AccessNumber> = every.iter().map(|(number, _)| number).collect();
    assert_eq!(order, n.iter().collect::<Vec<_>>(), "the group's order");
    // Pages: `offset` skips that many of those that pass the filter, in the group's order.
    assert_eq!(
        page_from(None, None, Some(2), 3).await,
        (6, every[3..5].to_vec()),
        "the second page of two after three"
    );
    assert_eq!(
        page_from(Some(StateKind::Free), None, None, 1).await,
        (2, free[1..].to_vec())
    );
    assert_eq!(
        page_from(None, None, None, 6).await,
        (6, vec![]),
        "past the end"
    );
    let (nope, all) = (crate::group_name("NOPE"), NumbersFilter::default());
    let unknown = t.store.group_page(&nope, &all).await.expect("page");
    assert!(unknown.is_none());
}
