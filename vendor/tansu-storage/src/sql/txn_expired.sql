-- weir patch: transaction timeouts (sqlite only: julianday). The transactions of cluster $1
-- whose newest producer epoch began a transaction more than its timeout before now, with that
-- timeout: they are aborted and their producer fenced (`Storage::abort_expired_transactions`).

select

txn.name as name,
txn_d.transaction_timeout_ms as timeout_ms

from

cluster c
join txn on txn.cluster = c.id
join producer p on txn.producer = p.id
join producer_epoch pe on pe.producer = p.id
join txn_detail txn_d on txn_d."transaction" = txn.id and txn_d.producer_epoch = pe.id

where

c.name = $1
and txn_d.status = 'BEGIN'
and txn_d.started_at is not null
and pe.epoch = (select max(newest.epoch) from producer_epoch newest where newest.producer = p.id)
and (julianday('now') - julianday(txn_d.started_at)) * 86400000.0 > txn_d.transaction_timeout_ms;
