-- access-broker SQLite schema, version 7: the purge (every 30 s, every 5 s while a live event
-- stream listens or `[events]` keeps an outbox) deletes retiring numbers whose reservation has
-- ended. Found by scanning every number, that took 47 ms on a million numbers in the writer
-- thread, and every call's commit on the node waited for it (an outside audit: 60-200 ms
-- stalls every 5 s with `/ui` open). This index holds only the retiring numbers.
CREATE INDEX numbers_retiring ON numbers (number) WHERE retiring = 1;
