-- Candor routing rule for Orthanc: send every new study to the Candor gateway exactly once.
--
-- Orthanc calls OnStableStudy when no instance of a study arrived for "StableAge" seconds.
-- The rule marks the study with the user metadata CANDOR_FLAG *before* sending it, so the
-- results the gateway stores back into the study (which make the study "stable" again)
-- are not routed a second time. Without the flag the study would loop forever.
--
-- Configuration (orthanc.json):
--   "DicomModalities": { "CANDOR": [ "CANDOR", "<gateway host>", <gateway port> ] },
--   "UserMetadata":    { "CandorRouted": 1024 },
--   "LuaScripts":      [ "/etc/orthanc/candor-route.lua" ]

CANDOR_MODALITY = 'CANDOR'       -- key of the gateway in "DicomModalities"
CANDOR_AET = 'CANDOR'            -- the gateway's AE title (first value of that entry)
CANDOR_FLAG = 'CandorRouted'     -- user metadata name (declared in "UserMetadata")

-- Modalities of results: a study made only of these is never routed (e.g. results that
-- arrive after the source study was deleted).
RESULT_MODALITIES = { SEG = true, SR = true, KO = true, PR = true }

function OnStableStudy(studyId, tags, metadata)
  if metadata[CANDOR_FLAG] ~= nil then
    return                                      -- routed before: results arriving, or a re-stabilised study
  end
  local hasSource = false
  for _, series in ipairs(ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))) do
    local modality = series['MainDicomTags']['Modality']
    if modality == nil or not RESULT_MODALITIES[modality] then
      hasSource = true
    end
  end
  if not hasSource then
    return
  end
  RestApiPut('/studies/' .. studyId .. '/metadata/' .. CANDOR_FLAG, os.date('!%Y-%m-%dT%H:%M:%SZ'))
  local request = { Resources = { studyId }, Synchronous = false }
  local job = ParseJson(RestApiPost('/modalities/' .. CANDOR_MODALITY .. '/store', DumpJson(request, true)))
  print('candor-route: study ' .. studyId .. ' sent to ' .. CANDOR_MODALITY .. ' (job ' .. job['ID'] .. ')')
end

-- A failed store job (gateway down, disk watermark reached) clears the flag so that the
-- study is routed again the next time it becomes stable, and says how to retry now:
--   curl -X POST http://localhost:8042/jobs/<job id>/resubmit
function OnJobFailure(jobId)
  local job = ParseJson(RestApiGet('/jobs/' .. jobId))
  if job['Type'] ~= 'DicomModalityStore' or job['Content']['RemoteAet'] ~= CANDOR_AET then
    return
  end
  for _, studyId in ipairs(job['Content']['ParentResources'] or {}) do
    RestApiDelete('/studies/' .. studyId .. '/metadata/' .. CANDOR_FLAG)
    print('candor-route: sending study ' .. studyId .. ' to ' .. CANDOR_MODALITY .. ' failed (job ' .. jobId
          .. '); flag cleared, resubmit with POST /jobs/' .. jobId .. '/resubmit')
  end
end
