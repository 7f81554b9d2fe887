;; A runnable importing a function of a module the host does not know ("suborbital"): loading it
;; fails, naming the import.
(module
  (import "suborbital" "does_not_exist" (func $does_not_exist (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param i32 i32 i32)))
