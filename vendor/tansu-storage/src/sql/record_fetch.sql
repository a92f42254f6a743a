-- -*- mode: sql; sql-product: postgres; -*-
-- Copyright ⓒ 2024-2025 Peter Morgan <peter.james.morgan@gmail.com>
--
-- Licensed under the Apache License, Version 2.0 (the "License");
-- you may not use this file except in compliance with the License.
-- You may obtain a copy of the License at
--
-- http://www.apache.org/licenses/LICENSE-2.0
--
-- Unless required by applicable law or agreed to in writing, software
-- distributed under the License is distributed on an "AS IS" BASIS,
-- WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
-- See the License for the specific language governing permissions and
-- limitations under the License.

-- prepare record_fetch (text, text, integer, integer, integer, integer) as
-- weir patch: the records from the fetch offset in offset order (the primary key's), at most
-- ($5 / 8 + 1) of them, as a record costs at least 8 bytes on the wire. Column 5 is a record's
-- size, key and value plus those 8 bytes; the reader stops once the sizes before a record reach
-- $5 (Delegate::fetch in lite.rs). The crate summed sizes with a window function over every
-- record up to the high watermark, sorting all of them, for each fetch, and counted only key and
-- value, so one-byte messages made answers of millions of records.
select

r.offset_id,
r.attributes,
r.timestamp,
r.k,
r.v,
8 + coalesce(length(r.k), 0) + coalesce(length(r.v), 0) as size,
r.producer_id,
r.producer_epoch

from

cluster c
join topic t on t.cluster = c.id
join topition tp on tp.topic = t.id
join record r on r.topition = tp.id

where

c.name = $1
and t.name = $2
and tp.partition = $3
and r.offset_id >= $4
and r.offset_id < $6

order by r.offset_id
limit $5 / 8 + 1;
