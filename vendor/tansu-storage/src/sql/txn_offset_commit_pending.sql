-- -*- mode: sql; sql-product: postgres; -*-
-- weir patch: stable offsets (see `Storage::pending_transactional_offsets`). The offsets a
-- transaction commits stay in txn_offset_commit_tp until the transaction ends (then they are
-- copied to consumer_offset, if it committed, and deleted), so every row here is pending.

select distinct

t.name as topic,
tp.partition as partition

from

cluster c
join consumer_group cg on cg.cluster = c.id
join txn_offset_commit oc on oc.consumer_group = cg.id
join txn_offset_commit_tp oc_tp on oc_tp.offset_commit = oc.id
join topition tp on tp.id = oc_tp.topition
join topic t on t.id = tp.topic

where

c.name = $1
and cg.name = $2;
