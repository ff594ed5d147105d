//! An IVR that retries a match after the first one ended the session (`_delete_service`):
//! the retry finds the ended reservation's session gone and is refused `session_ended`, and
//! it is not a stray call. Counted as one, such retries quarantined numbers in daily use.

use access_broker::domain::NumberPolicy;
use access_broker::rules::call::Reason;
use access_broker::store::{MatchOutcome, MatchRequest, NumberState};

use crate::lifecycle::{call, reason, reserve_coded, state_of, with_policy};
use crate::support::TestStore;
use crate::{SEC, code, plain_match};

crate::conformance!(a_retry_after_the_session_ended_is_no_stray_call);

async fn a_retry_after_the_session_ended_is_no_stray_call(t: TestStore) {
    let policy = NumberPolicy {
        late_match_grace: 30,
        quarantine_after_stray_calls: 1,
        ..NumberPolicy::default()
    };
    let g = with_policy(&t, 1, policy).await;
    for round in 0..3 {
        let s = t.session(600 * SEC).await;
        let r = reserve_coded(&t, &g, &s, "4242").await;
        let ending = MatchRequest {
            code: Some(code("4242")),
            end_session: true,
            ..plain_match(&r.number)
        };
        let first = call(&t, ending.clone()).await;
        assert!(matches!(first, MatchOutcome::Matched { .. }), "{first:?}");
        t.advance(SEC);
        let retry = call(&t, ending).await;
        assert_eq!(reason(&retry), Some(Reason::SessionEnded), "round {round}");
        assert!(
            matches!(
                retry,
                MatchOutcome::NoMatch {
                    stray: false,
                    quarantined: false,
                    ..
                }
            ),
            "round {round}: {retry:?}"
        );
        let n = r.number.as_str();
        assert_eq!(
            state_of(&t, &g, n).await,
            (NumberState::Free, 0),
            "round {round}"
        );
    }
    // Past the grace the same call is stray, and the first quarantines (N = 1).
    t.advance(30 * SEC);
    let n = t
        .store
        .group(&g)
        .await
        .expect("group")
        .expect("exists")
        .numbers[0]
        .number
        .clone();
    let stray = call(
        &t,
        MatchRequest {
            code: Some(code("4242")),
            ..plain_match(&n)
        },
    )
    .await;
    assert!(
        matches!(
            stray,
            MatchOutcome::NoMatch {
                stray: true,
                quarantined: true,
                ..
            }
        ),
        "{stray:?}"
    );
}
