// fold-constant-branches replaces a dy.if / dy.switch on an arith.constant by the region
// that always runs: a dy.yield hands its values to the users, any other exit hoists into
// the enclosing block and makes what followed the branch unreachable (erased).
// RUN: opt-pipeline %s -p fold-constant-branches | filecheck %s

// CHECK-LABEL: dy.func @if_true
// CHECK-NEXT:    %t = arith.constant true
// CHECK-NEXT:    %a = arith.addi %x, %x : i64
// CHECK-NEXT:    dy.return %a : i64
// CHECK-NEXT:  }
dy.func @if_true(%x: i64) -> (i64) {
  %t = arith.constant true
  %r = dy.if %t -> (i64) {
    %a = arith.addi %x, %x : i64
    dy.yield %a : i64
  } else {
    %b = arith.muli %x, %x : i64
    dy.yield %b : i64
  }
  dy.return %r : i64
}

// CHECK-LABEL: dy.func @if_false
// CHECK-NOT:     dy.if
// CHECK-NOT:     arith.addi
// CHECK:         %b = arith.muli %x, %x : i64
// CHECK-NEXT:    dy.return %b : i64
dy.func @if_false(%x: i64) -> (i64) {
  %f = arith.constant false
  %r = dy.if %f -> (i64) {
    %a = arith.addi %x, %x : i64
    dy.yield %a : i64
  } else {
    %b = arith.muli %x, %x : i64
    dy.yield %b : i64
  }
  dy.return %r : i64
}

// The matching case runs; a selector matching no case takes the default region.
// CHECK-LABEL: dy.func @switch_case_and_default
// CHECK-NOT:     dy.switch
// CHECK:         %two = arith.muli %x, %x : i64
// CHECK-NEXT:    %other = arith.subi %two, %x : i64
// CHECK-NEXT:    dy.return %other : i64
dy.func @switch_case_and_default(%x: i64) -> (i64) {
  %c1 = arith.constant 1 : i64
  %c7 = arith.constant 7 : i64
  %r = dy.switch %c1 : i64 -> (i64) case 0 {
    %zero = arith.addi %x, %x : i64
    dy.yield %zero : i64
  } case 1 {
    %two = arith.muli %x, %x : i64
    dy.yield %two : i64
  } default {
    dy.yield %x : i64
  }
  %s = dy.switch %c7 : i64 -> (i64) case 0 {
    dy.yield %x : i64
  } default {
    %other = arith.subi %r, %x : i64
    dy.yield %other : i64
  }
  dy.return %s : i64
}

// A dy.return taken unconditionally ends the function: the rest of the block is erased.
// CHECK-LABEL: dy.func @return_hoisted
// CHECK:         %early = arith.addi %x, %x : i64
// CHECK-NEXT:    dy.return %early : i64
// CHECK-NEXT:  }
dy.func @return_hoisted(%x: i64) -> (i64) {
  %t = arith.constant true
  dy.if %t {
    %early = arith.addi %x, %x : i64
    dy.return %early : i64
  } else {
    dy.yield
  }
  %late = arith.muli %x, %x : i64
  dy.return %late : i64
}

// A constant dy.break inside a loop body becomes the body's terminator.
// CHECK-LABEL: dy.func @break_hoisted
// CHECK:         dy.for %i = %c0 to %n step %c1 iter_args(%acc = %c0) -> (i64) {
// CHECK-NEXT:      %next = arith.addi %acc, %i : i64
// CHECK-NEXT:      dy.break %next : i64
// CHECK-NEXT:    }
dy.func @break_hoisted(%n: i64) -> (i64) {
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %t = arith.constant true
  %r = dy.for %i = %c0 to %n step %c1 iter_args(%acc = %c0) -> (i64) {
    %next = arith.addi %acc, %i : i64
    dy.if %t {
      dy.break %next : i64
    } else {
      dy.yield
    }
    %unreachable = arith.muli %next, %next : i64
    dy.yield %unreachable : i64
  }
  dy.return %r : i64
}

// A branch on a value computed at run time stays.
// CHECK-LABEL: dy.func @dynamic_kept
// CHECK:         dy.if %c
dy.func @dynamic_kept(%c: i1, %x: i64) -> (i64) {
  %r = dy.if %c -> (i64) {
    dy.yield %x : i64
  } else {
    %y = arith.addi %x, %x : i64
    dy.yield %y : i64
  }
  dy.return %r : i64
}

// Nested constant branches fold from the outside in, to a fixpoint.
// CHECK-LABEL: dy.func @nested
// CHECK-NOT:     dy.if
// CHECK:         %inner = arith.subi %x, %x : i64
// CHECK-NEXT:    dy.return %inner : i64
dy.func @nested(%x: i64) -> (i64) {
  %t = arith.constant true
  %f = arith.constant false
  %r = dy.if %t -> (i64) {
    %s = dy.if %f -> (i64) {
      dy.yield %x : i64
    } else {
      %inner = arith.subi %x, %x : i64
      dy.yield %inner : i64
    }
    dy.yield %s : i64
  } else {
    dy.yield %x : i64
  }
  dy.return %r : i64
}
