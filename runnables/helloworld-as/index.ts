// helloworld-as: answers "hello, <input>", like helloworld-rs, in AssemblyScript.
import { allocate, deallocate, runnable } from "../suborbital-as/index";

export { allocate, deallocate };

function run(input: ArrayBuffer): ArrayBuffer {
  return String.UTF8.encode("hello, " + String.UTF8.decode(input));
}

export function run_e(ptr: usize, size: i32, ident: i32): void {
  runnable(ptr, size, ident, run);
}
