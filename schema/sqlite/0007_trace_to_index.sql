-- As on PostgreSQL: a user's traces are found along two indexes,
-- sip_traces_from by the From address and sip_traces_to by the To address.
-- Where the two addresses are the same (a REGISTER and its answers, four
-- traces for each REGISTER with digest) the first index finds the trace
-- already; the second now keeps only the traces whose To differs from
-- their From, an index insert less for each of those. Readers ask for
-- to_addr <> from_addr on that side.
DROP INDEX sip_traces_to;
CREATE INDEX sip_traces_to ON sip_traces (to_addr, id) WHERE to_addr <> from_addr;
