-- Argo CD health of a Quorum Model (a shared vLLM backend), read from its kstatus-style conditions.
-- Scaled to zero with no consumer is what the Model is for, not a failure: Healthy.
-- Runs in Argo CD's Lua 5.1 interpreter and in Lua 5.4 (the project's tests).
local hs = {}

local function condition(conditions, wanted)
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function detail(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Quorum operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Quorum operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = detail(stalled, "Stalled")
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = detail(ready, "Ready") .. "; " .. tostring(status.consumerCount or 0) .. " consumers"
  return hs
end
if ready ~= nil and ready.reason == "ScaledToZero" then
  hs.status = "Healthy"
  hs.message = detail(ready, "Scaled to zero")
  return hs
end

hs.status = "Progressing"
hs.message = detail(ready, "Waiting for the model server")
return hs
