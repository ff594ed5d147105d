//! The decision core: every rule about reservations, in one place, with no I/O.
//!
//! Nothing here reads a clock, takes a lock or touches a store. Each function is given `now`,
//! the request and the rows that matter, and returns the answer and what to write. The
//! memory/SQLite engine (`store::local::engine`) and the PostgreSQL store (`store::postgres`)
//! both call these functions; their own code only finds, locks, reads and writes rows. A rule
//! added later is added here, once, and both stores follow it.
//!
//! - [`booking`]: how long a reservation holds, capping by the session, renewal (which code
//!   and phone a renewed reservation keeps), and Retry-After on an empty pool.
//! - [`pick`]: which free number each allocation strategy takes, and the round-robin cursor.
//! - [`group`]: a group's settings after an admin change (the cursor's part is in `pick`).
//! - [`matching`]: whether a call's code and phone match a reservation.
//! - [`call`]: what a call on a number does: match, late match, wrong-code count and lockout,
//!   stray call, and the reason a refused call is given.
//! - [`lifecycle`]: how reservations end, cool-down, what a number remembers, quarantine.
//! - [`quota`]: whether a client may take one more reservation (`[limits]`).

pub mod booking;
pub mod call;
pub mod group;
pub mod lifecycle;
pub mod matching;
pub mod pick;
pub mod quota;

pub use booking::{Booking, book, retry_after};
pub use matching::{Refusal, check_match};
pub use pick::{
    Candidates, FreeNumbers, Pos, cursor_after_change, cursor_after_pick, next_position, pick,
};
