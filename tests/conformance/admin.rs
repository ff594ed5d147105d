//! The admin operations: group statistics and number states, adding and removing numbers
//! (a reserved one retires), deleting and changing groups, finding and releasing
//! reservations.

use access_broker::domain::{Allocation, BookingTimeout, GroupName};
use access_broker::store::{
    AddNumbers, DeleteGroup, GroupChange, NumberState, PutGroup, RemoveNumber, ReservationFilter,
};

use crate::support::{TestStore, group, number, reserve_request};
use crate::{SEC, group_name, matches, phone, reserve_fresh};

crate::conformance!(
    admin_counts_and_states,
    admin_add_and_remove_numbers,
    admin_delete_group,
    admin_change_allocation_keeps_reservations,
    admin_find_and_release,
);

async fn admin_counts_and_states(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    t.with_group("ALPHA", 1, Allocation::Random).await;
    let s = t.session(300 * SEC).await;
    let r = t.reserve(&s, &g).await.expect("reserved");
    let groups = t.store.groups().await.expect("groups");
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["ALPHA", "DNIS"], "sorted by name");
    let dnis = &groups[1];
    let counts = (dnis.size, dnis.free, dnis.reserved, dnis.retiring);
    assert_eq!(counts, (3, 2, 1, 0));
    assert_eq!(dnis.allocation, Allocation::RoundRobin);
    let detail = t.store.group(&g).await.expect("group").expect("exists");
    assert_eq!(detail.numbers.len(), 3);
    assert_eq!(detail.numbers[0].number, r.number);
    let reserved = NumberState::Reserved {
        session: s.clone(),
        expires_in: 30,
    };
    assert_eq!(detail.numbers[0].state, reserved);
    assert_eq!(detail.numbers[1].state, NumberState::Free);
    t.advance(30 * SEC);
    let detail = t.store.group(&g).await.expect("group").expect("exists");
    assert_eq!(
        detail.numbers[0].state,
        NumberState::Free,
        "expired shows free"
    );
    assert_eq!(detail.stats.free, 3);
    let missing = t.store.group(&group_name("NOPE")).await.expect("group");
    assert!(missing.is_none());
}

async fn add(t: &TestStore, g: &GroupName, numbers: &[&str]) -> AddNumbers {
    let numbers = numbers.iter().map(|n| number(n)).collect();
    t.store.add_numbers(g, numbers).await.expect("add")
}

async fn admin_add_and_remove_numbers(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let other = t.with_group("OTHER", 1, Allocation::RoundRobin).await;
    let nope = group_name("NOPE");
    let others = group("OTHER", 1, Allocation::RoundRobin).numbers[0].clone();
    let added = add(&t, &g, &["7000", "7001"]).await;
    assert_eq!(added, AddNumbers::Added(2));
    let taken = add(&t, &g, &["7002", &others.to_string()]).await;
    assert!(
        matches!(taken, AddNumbers::Taken(ref n, ref owner) if *n == others && *owner == other),
        "{taken:?}"
    );
    let size = t.store.group(&g).await.expect("g").expect("g").stats.size;
    assert_eq!(size, 4, "refused whole: 7002 not added");
    assert_eq!(add(&t, &nope, &["1"]).await, AddNumbers::UnknownGroup);

    // (group, number, expected, why), in order.
    for (group, n, want, why) in [
        (&g, "7001", RemoveNumber::Removed, "a free number"),
        (&g, "7001", RemoveNumber::UnknownNumber, "removed already"),
        (
            &g,
            &others.to_string(),
            RemoveNumber::UnknownNumber,
            "other group's",
        ),
        (&nope, "7000", RemoveNumber::UnknownGroup, "unknown group"),
    ] {
        let got = t.store.remove_number(group, &number(n)).await.expect("rm");
        assert_eq!(got, want, "{why}");
    }

    // A reserved number retires: it stays held until the reservation ends, then leaves.
    let r = reserve_fresh(&t, &g).await;
    let removed = t.store.remove_number(&g, &r.number).await.expect("rm");
    assert_eq!(removed, RemoveNumber::Retiring);
    let detail = t.store.group(&g).await.expect("g").expect("g");
    let stats = &detail.stats;
    assert_eq!((stats.size, stats.reserved, stats.retiring), (2, 0, 1));
    assert!(
        detail
            .numbers
            .iter()
            .any(|n| n.number == r.number && matches!(n.state, NumberState::Retiring { .. }))
    );
    let own = r.number.to_string();
    let taken = add(&t, &other, &[&own]).await;
    assert!(matches!(taken, AddNumbers::Taken(..)), "{taken:?}");
    assert!(
        matches(&t, &r.number).await,
        "a retiring reservation still matches"
    );
    let detail = t.store.group(&g).await.expect("g").expect("g");
    assert_eq!((detail.stats.size, detail.stats.retiring), (2, 0));
    let listed = detail.numbers.iter().any(|n| n.number == r.number);
    assert!(!listed, "gone once released");
    let joined = t.store.add_numbers(&other, vec![r.number.clone()]).await;
    assert_eq!(
        joined.expect("add"),
        AddNumbers::Added(1),
        "free to join another group"
    );

    // Added again while retiring, a number stays: back in service, still held (the add was
    // answered "0 added" and the number left with its reservation all the same).
    let r = reserve_fresh(&t, &g).await;
    let removed = t.store.remove_number(&g, &r.number).await.expect("rm");
    assert_eq!(removed, RemoveNumber::Retiring);
    let again = r.number.to_string();
    assert_eq!(add(&t, &g, &[&again, &again]).await, AddNumbers::Added(1));
    assert_eq!(add(&t, &g, &[&again]).await, AddNumbers::Added(0), "once");
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!((stats.reserved, stats.retiring), (1, 0));
    assert!(matches(&t, &r.number).await, "still its reservation");
    let detail = t.store.group(&g).await.expect("g").expect("g");
    assert!(
        detail
            .numbers
            .iter()
            .any(|n| n.number == r.number && matches!(n.state, NumberState::Free)),
        "in the group, free, once released"
    );
    // And through a PUT of the group's numbers.
    let r = reserve_fresh(&t, &g).await;
    t.store.remove_number(&g, &r.number).await.expect("rm");
    let put = GroupChange {
        name: g.clone(),
        allocation: None,
        booking_timeout: None,
        policy: Default::default(),
        numbers: vec![r.number.clone()],
    };
    t.store.put_group(put).await.expect("put");
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!(stats.retiring, 0, "a PUT listing it keeps it too");
}

async fn admin_delete_group(t: TestStore) {
    let g = t.with_group("DNIS", 2, Allocation::RoundRobin).await;
    let s = t.session(300 * SEC).await;
    t.reserve(&s, &g).await.expect("reserved");
    // (time passed before, expected answer)
    for (wait, want) in [
        (0, DeleteGroup::Busy),
        (30, DeleteGroup::Deleted),
        (0, DeleteGroup::NotFound),
    ] {
        t.advance(wait * SEC);
        assert_eq!(t.store.delete_group(&g).await.expect("delete"), want);
    }
    assert!(t.store.groups().await.expect("groups").is_empty());
    assert!(matches!(
        t.reserve(&s, &g).await,
        Err(access_broker::store::ReserveError::UnknownGroup)
    ));
    let g2 = t.with_group("NEW", 0, Allocation::RoundRobin).await;
    let added = t.store.add_numbers(&g2, vec![number("5550000")]).await;
    assert_eq!(
        added.expect("add"),
        AddNumbers::Added(1),
        "numbers of a deleted group are free to reuse"
    );
}

async fn admin_change_allocation_keeps_reservations(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let r = reserve_fresh(&t, &g).await;
    let settings = |name: &GroupName, allocation, secs: Option<i64>| GroupChange {
        name: name.clone(),
        allocation: Some(allocation),
        booking_timeout: Some(secs.and_then(|s| BookingTimeout::from_secs_strict(s).ok())),
        policy: Default::default(),
        numbers: Vec::new(),
    };
    let lru = settings(&g, Allocation::LeastRecentlyUsed, Some(60));
    assert_eq!(
        t.store.put_group(lru).await.expect("put"),
        PutGroup::Changed
    );
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!(
        (
            stats.allocation,
            stats.booking_timeout,
            stats.reserved,
            stats.free
        ),
        (Allocation::LeastRecentlyUsed, Some(60), 1, 2)
    );
    let r2 = reserve_fresh(&t, &g).await;
    assert_ne!(r2.number, r.number);
    assert_eq!(r2.expires_in, 60 * SEC, "new group timeout applies");
    let fresh = settings(&group_name("FRESH"), Allocation::Random, None);
    assert_eq!(
        t.store.put_group(fresh).await.expect("put"),
        PutGroup::Created
    );
}

async fn admin_find_and_release(t: TestStore) {
    let g = t.with_group("DNIS", 3, Allocation::RoundRobin).await;
    let a = t.session(300 * SEC).await;
    let b = t.session(300 * SEC).await;
    let mut req = reserve_request(&a, &g);
    req.phone = Some(phone("+33 1 23"));
    let ra = t.store.reserve(req).await.expect("reserved");
    let rb = t.reserve(&b, &g).await.expect("reserved");
    let by_session = ReservationFilter {
        session: Some(b.clone()),
        ..Default::default()
    };
    let found = t.store.find_reservations(by_session).await.expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].number, &found[0].group), (&rb.number, &g));
    // (filter, sessions expected, why)
    for (filter, want, why) in [
        (
            ReservationFilter {
                phone: Some(phone("+33123")),
                ..Default::default()
            },
            vec![a.clone()],
            "by phone, normalised",
        ),
        (
            ReservationFilter::default(),
            vec![a.clone(), b.clone()],
            "all",
        ),
        (
            ReservationFilter {
                number: Some(ra.number.clone()),
                session: Some(b.clone()),
                phone: None,
                limit: None,
            },
            vec![],
            "criteria combine",
        ),
    ] {
        let found = t.store.find_reservations(filter).await.expect("find");
        let mut got: Vec<_> = found.into_iter().map(|r| r.session).collect();
        got.sort_by_key(|s| s.to_string());
        let mut want = want;
        want.sort_by_key(|s| s.to_string());
        assert_eq!(got, want, "{why}");
    }
    assert!(t.store.release(&ra.number).await.expect("release"));
    assert!(!t.store.release(&ra.number).await.expect("release twice"));
    let unknown = t.store.release(&number("42")).await;
    assert!(!unknown.expect("release unknown"));
    reserve_fresh(&t, &g).await;
    let again = reserve_fresh(&t, &g).await;
    assert_eq!(again.number, ra.number, "the released number is free");
}
