-- Argo CD health check for fax.faxbot.io/FaxPluginConfig (faxbot-operator).
--
-- The status is in kstatus form (conditions Ready, Reconciling, Stalled, plus Progressing and Degraded,
-- and status.observedGeneration), written by the operator as described in docs/operator.md
-- ("GitOps health: Flux and Argo CD"). Messages are the operator's own condition messages.
--
-- Runs without the Lua standard libraries (the argocd-cm default): no string or math functions here.
-- Tested with charts/faxbot-operator/argocd/health_test.yaml (Argo CD's harness format).
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c)
  if c ~= nil and c.message ~= nil then
    return c.message
  end
  return ""
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. generation .. " (status is for generation " ..
    status.observedGeneration .. ")"
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local degraded = condition(conditions, "Degraded")
local reconciling = condition(conditions, "Reconciling")
local ready = condition(conditions, "Ready")

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled)
  return hs
end
if isTrue(degraded) then
  hs.status = "Degraded"
  hs.message = messageOf(degraded)
  return hs
end
if status.rollout ~= nil and status.rollout.phase == "Paused" then
  hs.status = "Suspended"
  if isTrue(reconciling) then
    hs.message = messageOf(reconciling)
  else
    hs.message = messageOf(ready)
  end
  return hs
end
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling)
  return hs
end
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = messageOf(ready)
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = messageOf(ready)
else
  hs.message = "waiting for the operator"
end
return hs
