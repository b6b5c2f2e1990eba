-- A count and a sum over ten million numbers.
-- @path /concurrent/heavy-query
SELECT count() AS c, sum(number) AS s
FROM (SELECT number FROM system.numbers LIMIT 10000000)
