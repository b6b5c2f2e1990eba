-- The cheapest query there is.
-- @path /concurrent/simple-query
SELECT 1 AS value
