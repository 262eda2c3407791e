// imgpipe-coordinator: keeps every job in SQLite, assigns builds, routes images to controllers.
#include "coordinator/coordinator_main.h"

int main(int argc, char** argv) {
  return imgpipe::coord::coordinatorMain(argc, argv);
}
