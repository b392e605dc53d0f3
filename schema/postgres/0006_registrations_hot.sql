-- A re-REGISTER rewrites its binding: the expiry, the CSeq, often the
-- source. With an index on expires_at, no such update could be HOT (an
-- update that changes no indexed column and finds room on its page), so
-- each wrote new entries in both indexes and left a dead row that every
-- read of the table went through until vacuum came: under a load of
-- REGISTERs the table held thirty dead rows for each live one.
--
-- Only the purge read registrations_expires; it now scans the table, which
-- holds one row per device. Pages are filled to half, so that an update
-- finds room for its new version on the page of the old one.
DROP INDEX registrations_expires;
ALTER TABLE registrations SET (fillfactor = 50);
