import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { ControlError, parseControlMessage } from "./control_protocol.ts";

Deno.test("parseControlMessage keeps known fields of valid messages", () => {
  assertEquals(
    parseControlMessage('{"type":"hello","token":"ab","pid":7,"x":1}'),
    { type: "hello", token: "ab", pid: 7 },
  );
  assertEquals(
    parseControlMessage('{"type":"state","state":{"a":[1,{"b":null}]}}'),
    { type: "state", state: { a: [1, { b: null }] } },
  );
  assertEquals(parseControlMessage('{"type":"state","state":null}'), {
    type: "state",
    state: null,
  });
  assertEquals(parseControlMessage('{"type":"ready","pid":12}'), {
    type: "ready",
    pid: 12,
  });
  assertEquals(parseControlMessage('{"type":"draining"}'), {
    type: "draining",
  });
  assertEquals(parseControlMessage(' {"type":"done"}\r'), { type: "done" });
  assertEquals(parseControlMessage('{"type":"fail","reason":"no"}'), {
    type: "fail",
    reason: "no",
  });
});

Deno.test("parseControlMessage refuses garbage with a protocol error", () => {
  const garbage = [
    "",
    "not json",
    "{",
    "null",
    "42",
    '"hello"',
    "[]",
    '[{"type":"done"}]',
    "{}",
    '{"type":7}',
    '{"type":"HELLO","token":"ab","pid":1}',
    '{"type":"hello","pid":1}',
    '{"type":"hello","token":1,"pid":1}',
    '{"type":"hello","token":"ab"}',
    '{"type":"hello","token":"ab","pid":0}',
    '{"type":"hello","token":"ab","pid":-3}',
    '{"type":"hello","token":"ab","pid":1.5}',
    '{"type":"hello","token":"ab","pid":"1"}',
    '{"type":"state"}',
    '{"type":"ready"}',
    '{"type":"fail"}',
    '{"type":"fail","reason":null}',
    '{"type":"__proto__"}',
  ];
  for (const line of garbage) {
    const error = assertThrows(() => parseControlMessage(line));
    assert(error instanceof ControlError, `${line}: ${error}`);
    assertEquals(error.code, "protocol", line);
  }
});
