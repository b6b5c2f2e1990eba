-- Sleeps in ClickHouse: requests at once finish together, each in its own instance.
-- @path /concurrent/test-isolation
-- @param delay default=1 min=0 max=3 description="Seconds to sleep"
SELECT sleep({delay:Float64}) AS slept, {delay:Float64} AS delay
