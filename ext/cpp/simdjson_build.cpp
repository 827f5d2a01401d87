// Compiles the simdjson implementation shipped inside the installed pysimdjson package (its
// directory is on the include path); no simdjson source lives in this repository.
#include "simdjson.cpp"
