-- Numbers from system.numbers; ask for format=ndjson to stream them as lines.
-- @path /stream/numbers
-- @param n default=10 max=100000000 description="How many numbers"
SELECT number FROM system.numbers LIMIT {n:UInt64}
