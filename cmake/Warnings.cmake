# Applied per target so third-party headers and generated code are not held to it.
function(imgpipe_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual
                                           -Wno-missing-field-initializers)
endfunction()
