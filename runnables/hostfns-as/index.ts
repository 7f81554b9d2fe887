// hostfns-as: calls one host function of Suborbital's ABI per job and answers what it got, with
// the same commands as runnables/hostfns-rs (see its src/lib.rs for the table): a command and
// its arguments, one per line. A host call's error answers as error 400 with the host's message.
import {
  addVar,
  allocate,
  cacheGet,
  cacheSet,
  dbExec,
  deallocate,
  fetchUrl,
  getSecret,
  getStaticFile,
  graphqlQuery,
  HostResult,
  logMsg,
  reqField,
  reqSetField,
  respSetHeader,
  returnError,
  runnable,
} from "../suborbital-as/index";

export { allocate, deallocate };

const EMPTY = new ArrayBuffer(0);

function text(value: string): ArrayBuffer {
  return String.UTF8.encode(value);
}

function answer(result: HostResult): ArrayBuffer {
  if (!result.ok) {
    returnError(400, result.error);
    return EMPTY;
  }
  return result.value;
}

/** Adds each `name=value` line from `from` on as a query variable. */
function addVars(lines: string[], from: i32): void {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i];
    const at = line.indexOf("=");
    if (at >= 0) addVar(line.substring(0, at), line.substring(at + 1));
  }
}

function run(input: ArrayBuffer): ArrayBuffer {
  const lines = String.UTF8.decode(input).split("\n");
  while (lines.length < 4) lines.push("");
  const command = lines[0];
  if (command == "log") {
    logMsg(I32.parseInt(lines[1]), lines[2]);
    return text("logged");
  }
  if (command == "get") return answer(reqField(I32.parseInt(lines[1]), lines[2]));
  if (command == "set") {
    const fieldType = I32.parseInt(lines[1]);
    const set = reqSetField(fieldType, lines[2], lines[3]);
    if (!set.ok) return answer(set);
    return answer(reqField(fieldType, lines[2]));
  }
  if (command == "header") {
    respSetHeader(lines[1], lines[2]);
    return text("header set");
  }
  if (command == "cache_set") {
    if (!cacheSet(lines[1], text(lines[3]), I32.parseInt(lines[2]))) {
      returnError(400, "the host did not store the value");
      return EMPTY;
    }
    return text("stored");
  }
  if (command == "cache_get") return answer(cacheGet(lines[1]));
  if (command == "secret") return answer(getSecret(lines[1]));
  if (command == "fetch") return answer(fetchUrl(I32.parseInt(lines[1]), lines[2], text(lines[3])));
  if (command == "graphql") {
    addVars(lines, 3);
    return answer(graphqlQuery(lines[1], lines[2]));
  }
  if (command == "file") return answer(getStaticFile(lines[1]));
  if (command == "db") {
    addVars(lines, 3);
    return answer(dbExec(I32.parseInt(lines[1]), lines[2]));
  }
  if (command == "error") {
    returnError(I32.parseInt(lines[1]), lines[2]);
    return EMPTY;
  }
  returnError(422, "unknown command \"" + command + "\"");
  return EMPTY;
}

export function run_e(ptr: usize, size: i32, ident: i32): void {
  runnable(ptr, size, ident, run);
}
