// What a rule header declares besides its maths: its options, by the names the caller's record (a
// param group) holds them under, each with its check; and its state arrays. The bindings read and
// check the options by these names (cpp/bindings/record.cpp); python/adagrad/rules/ declares the same
// names with their defaults and docs, and tests/test_rules.py holds the two to each other.
#pragma once

#include <cstdint>

namespace adagrad {

// The value an option must have; the bindings raise ValueError / TypeError naming the option.
enum class Check {
  non_negative,  // a finite real number >= 0
  non_positive,  // a finite real number <= 0
  positive,      // a finite real number > 0
  open_unit,     // a real number > 0 and < 1
  positive_int,  // an int (not a bool) >= 1
  flag,          // a bool
};

// One option of the rule's Options struct: exactly one of the member pointers is set, the one of
// its check's type (flag: bool, positive_int: int64, the others: double).
template <class Options>
struct OptionField {
  const char* name;
  Check check;
  double Options::* real = nullptr;
  std::int64_t Options::* integer = nullptr;
  bool Options::* flag = nullptr;
};

// One state array of a param, as the record names it (its key), and as messages name it: the
// single-call functions' argument (dense, sparse) or "<of> 'fc.weight'" for an optimizer's param.
struct StateSpec {
  const char* name;
  const char* dense_argument;
  const char* sparse_argument;
  const char* of;
};

}  // namespace adagrad
