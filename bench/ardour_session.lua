-- The Ardour side of bench/ardour.py: a headless session on JACK that ardour7-lua runs, driven line by line
-- over its standard input (each `muse_*` call below is one line). Ardour's own Lua API, as its scripts in
-- /usr/share/ardour7/scripts use it. Positions come in as quarter notes from the top, read on Ardour's tempo
-- map, and go out as samples on its timeline.

TRS = ARDOUR.TransportRequestSource.TRS_UI
TRACKS = {}

local function at_quarters(quarters)
  return Temporal.timepos_t.from_ticks(math.floor(Temporal.ticks_per_beat * quarters + 0.5))
end

local function sample_at(quarters)
  return Temporal.TempoMap.read():sample_at(at_quarters(quarters))
end

function muse_open(folder, name, rate)
  AudioEngine:set_backend("JACK", "ardour", "")
  assert(AudioEngine:start(false) == 0, "Ardour could not start on JACK")
  assert(create_session(folder, name, rate), "Ardour could not create the session " .. folder)
  ARDOUR.config():set_send_midi_clock(true)
end

-- the tempo map from its start: `bpm` quarter notes a minute, `num`/`den`
function muse_tempo(bpm, num, den)
  local tm = Temporal.TempoMap.fetch_writable()
  tm:set_tempo(Temporal.Tempo(bpm, bpm, 4), Temporal.timepos_t(0))
  tm:set_meter(Temporal.Meter(num, den), Temporal.timepos_t(0))
  Temporal.TempoMap.update(tm)
end

-- a new tempo from quarter note `quarters` on
function muse_tempo_at(quarters, bpm)
  local tm = Temporal.TempoMap.fetch_writable()
  tm:set_tempo(Temporal.Tempo(bpm, bpm, 4), at_quarters(quarters))
  Temporal.TempoMap.update(tm)
end

-- a MIDI track with no instrument, connected to nothing (JACK connects it from outside)
function muse_track(name)
  local tl = Session:new_midi_track(ARDOUR.ChanCount(ARDOUR.DataType("midi"), 1),
    ARDOUR.ChanCount(ARDOUR.DataType("midi"), 1), false, ARDOUR.PluginInfo(), nil, nil, 1, name,
    ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, false)
  for t in tl:iter() do TRACKS[name] = t:to_track() end
  print("TRACK", name)
end

function muse_arm(name, on)
  TRACKS[name]:rec_enable_control():set_value(on and 1 or 0, PBD.GroupControlDisposition.NoGroup)
end

function muse_record(on)
  if on then Session:maybe_enable_record(false) else Session:disable_record(false, false) end
end

function muse_roll() Session:request_roll(TRS) end
function muse_stop() Session:request_stop(false, false, TRS) end

function muse_locate(quarters, roll)
  local how = roll and ARDOUR.LocateTransportDisposition.MustRoll or ARDOUR.LocateTransportDisposition.MustStop
  Session:request_locate(sample_at(quarters), false, how, TRS)
end

-- Lua cannot make Ardour's loop range: bench/ardour.py writes it into the saved session and loads that in a new
-- interpreter (loading it again in the same one crashed Ardour 7.3 now and then).
-- The loop range's ends in the session file: audio time in superclocks
function muse_loop_range(first, last)
  local rate = Temporal.superclock_ticks_per_second   -- a function in Ardour 7.3, a constant in later ones
  if type(rate) == "function" then rate = rate() end
  local per_sample = rate / Session:nominal_sample_rate()
  print("LOOP", string.format("a%d a%d", sample_at(first) * per_sample, sample_at(last) * per_sample))
end

function muse_save_and_close()
  Session:save_state("")
  close_session()
end

function muse_load(folder, name)
  AudioEngine:set_backend("JACK", "ardour", "")
  assert(AudioEngine:start(false) == 0, "Ardour could not start on JACK")
  assert(load_session(folder, name), "Ardour could not load the session " .. folder)
  ARDOUR.config():set_send_midi_clock(true)
  for r in Session:get_routes():iter() do
    if not r:to_track():isnil() then TRACKS[r:name()] = r:to_track() end
  end
end

function muse_loop() Session:request_play_loop(true, true) end

function muse_pause(seconds) ARDOUR.LuaAPI.usleep(math.floor(seconds * 1e6)) end

function muse_unloop() Session:request_play_loop(false, false) end

-- where quarter note `quarters` lies on Ardour's timeline, in samples
function muse_sample_at(quarters) print("SAMPLE", sample_at(quarters)) end

function muse_position() print("POSITION", Session:transport_sample(), Session:transport_rolling()) end

-- Temporal.Beats has no accessor in Lua 7.3; its text is "beats:ticks"
local function beat_ticks(beats)
  local b, t = tostring(beats):match("^(-?%d+):(%d+)$")
  return tonumber(b) * Temporal.ticks_per_beat + tonumber(t)
end

-- every note of every region on the track, on Ardour's timeline: NOTE on_sample off_sample pitch velocity channel
function muse_notes(name)
  local tm = Temporal.TempoMap.read()
  for r in TRACKS[name]:playlist():region_list():iter() do
    local first, last = r:position():ticks(), r:position():ticks() + r:length():ticks()
    local origin = first - r:start():ticks()   -- the source's time 0 on the timeline
    for note in ARDOUR.LuaAPI.note_list(r:to_midiregion():model()):iter() do
      local on = origin + beat_ticks(note:time())
      if on >= first and on < last then
        local off = on + beat_ticks(note:length())
        print("NOTE", tm:sample_at(Temporal.timepos_t.from_ticks(on)), tm:sample_at(Temporal.timepos_t.from_ticks(off)),
          note:note(), note:velocity(), note:channel())
      end
    end
  end
end

-- the track's regions forgotten: the next take starts from nothing
function muse_clear(name)
  local playlist = TRACKS[name]:playlist()
  for r in playlist:region_list():iter() do playlist:remove_region(r) end
end
