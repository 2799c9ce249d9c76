// Checks .ics invitations against SPEC §4 with an independent parser: ical.js (the parser Thunderbird uses).
//
// Usage: ICALJS_DIR=/path/to/folder-with-node_modules node ical_check.mjs FILE.ics...
//
// For each FILE.ics an optional sidecar FILE.json may say what ical.js must compute (required for a
// REQUEST):
//   {"start_utc": "2027-03-09T13:00:00Z", "end_utc": "...", "occurrences_utc": ["...", ...]}
// start_utc/end_utc are the first VEVENT's (the master's) DTSTART/DTEND converted to UTC through the
// file's own VTIMEZONE; occurrences_utc are the starts ical.js expands from RRULE, EXDATE and the
// RECURRENCE-ID overrides.
//
// Prints one JSON report on stdout. Exit status: 0 when every file passes, 1 on any violation,
// 2 when ical.js cannot be loaded or no file is given.

import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

function loadIcal() {
  const bases = [];
  if (process.env.ICALJS_DIR) bases.push(path.join(path.resolve(process.env.ICALJS_DIR), 'noop.js'));
  bases.push(import.meta.url);
  for (const base of bases) {
    try {
      return createRequire(base)('ical.js');
    } catch {
      // Try the next place.
    }
  }
  return null;
}

// RFC 5545 §3.1: physical lines end in CRLF and are at most 75 octets; folding must not split UTF-8.
function checkRawLines(bytes, violations) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    violations.push('the file is not valid UTF-8 (a fold may have split a character)');
    return null;
  }
  if (!text.endsWith('\r\n')) violations.push('the last line does not end in CRLF');
  const bare = text.replace(/\r\n/g, '').match(/[\r\n]/g);
  if (bare) violations.push(`${bare.length} lines end in a bare LF or CR, not CRLF`);
  // The rest is checked on the lines as any line end splits them, so one fault does not hide others.
  const lines = text.split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, index) => {
    const octets = Buffer.byteLength(line, 'utf8');
    if (octets > 75) violations.push(`line ${index + 1} is ${octets} octets long, over 75`);
  });
  // Unfold into logical content lines for the checks the parsed form cannot show (quoting).
  const logical = [];
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && logical.length) {
      logical[logical.length - 1] += line.slice(1);
    } else {
      logical.push(line);
    }
  }
  return logical;
}

// Quoting is lost in parsing, so CN and FEATURE are checked on the unfolded text.
function checkQuoting(logical, violations) {
  for (const line of logical) {
    const name = line.split(/[;:]/, 1)[0].toUpperCase();
    if (name === 'ATTENDEE' || name === 'ORGANIZER') {
      if (/;CN=(?!")/i.test(line)) violations.push(`${name} has an unquoted CN: ${line}`);
    }
    if (name === 'CONFERENCE' && /;FEATURE="/i.test(line)) {
      violations.push(`CONFERENCE FEATURE is one quoted value, not a comma-separated list: ${line}`);
    }
  }
}

function value(jcalProp) {
  return jcalProp[3];
}

function isUtcValue(text) {
  return typeof text === 'string' && text.endsWith('Z');
}

function checkVtimezones(calendar, violations) {
  const tzids = new Set();
  for (const vtz of calendar.getAllSubcomponents('vtimezone')) {
    const tzid = vtz.getFirstPropertyValue('tzid');
    tzids.add(tzid);
    const parts = vtz.getAllSubcomponents();
    const names = parts.map((p) => p.name);
    for (const name of names) {
      if (name !== 'standard' && name !== 'daylight') violations.push(`VTIMEZONE ${tzid} has a ${name}`);
    }
    const standards = names.filter((n) => n === 'standard').length;
    const daylights = names.filter((n) => n === 'daylight').length;
    if (standards !== 1 || daylights > 1) {
      violations.push(`VTIMEZONE ${tzid} has ${standards} STANDARD and ${daylights} DAYLIGHT, not one of each at most`);
    }
    for (const part of parts) {
      if (part.hasProperty('rdate')) violations.push(`VTIMEZONE ${tzid} ${part.name.toUpperCase()} has RDATE`);
      if (daylights && !part.hasProperty('rrule')) {
        violations.push(`VTIMEZONE ${tzid} ${part.name.toUpperCase()} has no yearly RRULE`);
      }
      const rrule = part.getFirstPropertyValue('rrule');
      if (rrule && rrule.freq !== 'YEARLY') violations.push(`VTIMEZONE ${tzid} has a ${rrule.freq} RRULE`);
    }
  }
  return tzids;
}

function checkOrder(calendar, violations) {
  const names = calendar.getAllSubcomponents().map((c) => c.name);
  const lastTimezone = names.lastIndexOf('vtimezone');
  const firstEvent = names.indexOf('vevent');
  if (firstEvent < 0) violations.push('no VEVENT');
  if (lastTimezone > firstEvent) violations.push('a VTIMEZONE comes after a VEVENT');
}

function checkTimes(event, tzids, violations) {
  for (const name of ['dtstart', 'dtend', 'recurrence-id', 'exdate']) {
    for (const prop of event.getAllProperties(name)) {
      const tzid = prop.getParameter('tzid');
      const values = prop.jCal.slice(3);
      if (tzid) {
        if (!tzids.has(tzid)) violations.push(`${name.toUpperCase()} names TZID ${tzid} with no VTIMEZONE`);
      } else if (!values.every(isUtcValue)) {
        violations.push(`${name.toUpperCase()} is floating (no TZID, not UTC)`);
      }
    }
  }
  if (!event.hasProperty('dtstart')) violations.push('a VEVENT has no DTSTART');
}

function checkEvent(event, method, tzids, violations) {
  const uid = event.getFirstPropertyValue('uid');
  if (!uid) violations.push('a VEVENT has no UID');
  const stamp = event.getFirstProperty('dtstamp');
  if (!stamp) violations.push('a VEVENT has no DTSTAMP');
  else if (!isUtcValue(value(stamp.jCal))) violations.push('DTSTAMP is not in UTC');
  const sequence = event.getFirstPropertyValue('sequence');
  if (sequence === null || sequence === undefined) violations.push('a VEVENT has no SEQUENCE');
  checkTimes(event, tzids, violations);
  const organizer = event.getFirstProperty('organizer');
  if (!organizer) violations.push('a VEVENT has no ORGANIZER');
  else if (!String(organizer.getFirstValue()).startsWith('mailto:')) {
    violations.push(`ORGANIZER is not a lowercase mailto: address: ${organizer.getFirstValue()}`);
  }
  const attendees = event.getAllProperties('attendee');
  if (attendees.length !== 1) violations.push(`a VEVENT has ${attendees.length} ATTENDEEs, not one`);
  for (const attendee of attendees) {
    const want = { cutype: 'INDIVIDUAL', role: 'REQ-PARTICIPANT' };
    if (method === 'REQUEST') want.rsvp = 'TRUE';
    for (const [param, expected] of Object.entries(want)) {
      const got = attendee.getParameter(param);
      if (String(got).toUpperCase() !== expected) violations.push(`ATTENDEE ${param.toUpperCase()} is ${got}, not ${expected}`);
    }
    if (!attendee.getParameter('partstat')) violations.push('ATTENDEE has no PARTSTAT');
    if (!attendee.getParameter('cn')) violations.push('ATTENDEE has no CN');
    if (!String(attendee.getFirstValue()).startsWith('mailto:')) violations.push('ATTENDEE is not a mailto: address');
  }
  if (method === 'CANCEL' && event.getFirstPropertyValue('status') !== 'CANCELLED') {
    violations.push('a VEVENT of a CANCEL is not STATUS:CANCELLED');
  }
}

function iso(time) {
  return new Date(time.toUnixTime() * 1000).toISOString().replace('.000Z', 'Z');
}

function sameInstant(a, b) {
  return Date.parse(a) === Date.parse(b);
}

// ical.js's own expansion of the series: RRULE, EXDATE and RECURRENCE-ID overrides.
function expand(ICAL, events) {
  const master = events.find((e) => !e.hasProperty('recurrence-id')) || events[0];
  const series = new ICAL.Event(master);
  for (const other of events) if (other !== master) series.relateException(other);
  if (!series.isRecurring()) return [iso(series.startDate)];
  const starts = [];
  const iterator = series.iterator();
  for (let next = iterator.next(); next && starts.length < 1000; next = iterator.next()) {
    starts.push(iso(series.getOccurrenceDetails(next).startDate));
  }
  return starts;
}

function checkExpected(ICAL, events, expected, computed, violations) {
  const first = events.find((e) => !e.hasProperty('recurrence-id')) || events[0];
  const start = first.getFirstPropertyValue('dtstart');
  const end = first.getFirstPropertyValue('dtend');
  computed.start_utc = iso(start);
  if (end) computed.end_utc = iso(end);
  if (expected.start_utc && !sameInstant(expected.start_utc, computed.start_utc)) {
    violations.push(`ical.js reads the start as ${computed.start_utc}, expected ${expected.start_utc}`);
  }
  if (expected.end_utc && !sameInstant(expected.end_utc, computed.end_utc)) {
    violations.push(`ical.js reads the end as ${computed.end_utc}, expected ${expected.end_utc}`);
  }
  if (expected.occurrences_utc) {
    computed.occurrences_utc = expand(ICAL, events);
    const got = computed.occurrences_utc;
    const want = expected.occurrences_utc;
    const same = got.length === want.length && got.every((g, i) => sameInstant(g, want[i]));
    if (!same) violations.push(`ical.js expands ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
}

function checkFile(ICAL, file) {
  const violations = [];
  const computed = {};
  const report = { file, method: null, ok: false, violations, computed };
  const logical = checkRawLines(readFileSync(file), violations);
  if (logical === null) return report;
  checkQuoting(logical, violations);
  let calendar;
  try {
    ICAL.TimezoneService.reset();
    const jcal = ICAL.parse(logical.join('\r\n') + '\r\n');
    // ical.js returns a list when the text holds several top-level components.
    calendar = new ICAL.Component(Array.isArray(jcal[0]) ? jcal[0] : jcal);
  } catch (error) {
    violations.push(`ical.js cannot parse it: ${error.message}`);
    return report;
  }
  if (calendar.name !== 'vcalendar') violations.push(`the top component is ${calendar.name}`);
  const method = calendar.getFirstPropertyValue('method');
  report.method = method;
  if (!method) violations.push('no METHOD');
  checkOrder(calendar, violations);
  const tzids = checkVtimezones(calendar, violations);
  for (const vtz of calendar.getAllSubcomponents('vtimezone')) ICAL.TimezoneService.register(vtz);
  const events = calendar.getAllSubcomponents('vevent');
  for (const event of events) checkEvent(event, method, tzids, violations);
  const sidecar = file.replace(/\.ics$/i, '') + '.json';
  if (existsSync(sidecar)) {
    if (events.length) checkExpected(ICAL, events, JSON.parse(readFileSync(sidecar, 'utf8')), computed, violations);
  } else if (method === 'REQUEST') {
    violations.push(`no sidecar ${path.basename(sidecar)} with the expected UTC start`);
  }
  report.ok = violations.length === 0;
  return report;
}

// process.exitCode, not process.exit(): exiting at once can cut a long report short when stdout is a pipe.
function main() {
  const files = process.argv.slice(2);
  const ICAL = loadIcal();
  if (!ICAL || !files.length) {
    const error = !ICAL ? 'ical.js not found: set ICALJS_DIR to a folder holding node_modules/ical.js' : 'no .ics file given';
    console.log(JSON.stringify({ ok: false, error }));
    return 2;
  }
  const reports = files.map((file) => {
    try {
      return checkFile(ICAL, file);
    } catch (error) {
      return { file, method: null, ok: false, violations: [`the check failed: ${error.message}`], computed: {} };
    }
  });
  const ok = reports.every((r) => r.ok);
  console.log(JSON.stringify({ ok, files: reports }, null, 2));
  return ok ? 0 : 1;
}

process.exitCode = main();
