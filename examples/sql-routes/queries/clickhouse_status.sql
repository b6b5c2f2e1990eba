-- ClickHouse's version.
-- @path /clickhouse-status
SELECT version() AS version
