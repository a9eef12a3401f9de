-- Argo CD health check for fax.faxbot.io/FaxProvider (faxbot-operator).
--
-- The operator validates a FaxProvider (plugin, settings, credentials) and writes one condition, Ready,
-- with status.observedGeneration. Ready=True: Healthy; Ready=False (the validation reason and message):
-- Degraded, until the spec or its Secret is fixed; anything else: Progressing.
--
-- Runs without the Lua standard libraries (the argocd-cm default): no string or math functions here.
-- Tested with charts/faxbot-operator/argocd/health_test.yaml (Argo CD's harness format).
local hs = {}

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

local ready = nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then
      ready = c
      break
    end
  end
end
-- A Ready condition computed for an older generation says nothing about the current spec.
local stale = ready ~= nil and generation ~= nil and ready.observedGeneration ~= nil and
  ready.observedGeneration < generation
if ready == nil or stale then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end

local message = ""
if ready.message ~= nil then
  message = ready.message
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
