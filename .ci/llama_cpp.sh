# Source this (`. .ci/llama_cpp.sh DIR`) inside the CI venv: builds llama.cpp from
# the llama-cpp-python sdist on PyPI (its vendor/llama.cpp, the same source the
# wheel compiles), installs the Python binding against that build instead of
# compiling llama.cpp a second time, and exports what tests/test_llama_cpp.py
# reads: LLAMA_CPP_LIB_PATH (libllama.so for the binding) and LLAMA_CPP_BIN
# (llama-convert-llama2c-to-ggml, llama-simple, llama-bench), and LLAMA_CPP_SRC (the
# source folder whose convert_hf_to_gguf.py tests/test_gguf_hf_convert.py runs; that
# test also needs torch, and skips with the reason without it). About 10 minutes
# on 2 cores.
LLAMA_CPP_PYTHON_VERSION=0.3.36
llama_cpp_dir="$(mkdir -p "${1:-.ci-llama-cpp}" && cd "${1:-.ci-llama-cpp}" && pwd)"
pip install -q cmake ninja
(
    cd "$llama_cpp_dir"
    # --no-binary for this package only: its build tools (cmake, scikit-build-core) come as wheels.
    pip download -q --no-binary llama-cpp-python --no-deps "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    tar xzf "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    cmake -S "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp" -B build -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > cmake.log
    cmake --build build -j "$(nproc)" --target llama llama-simple llama-bench \
        llama-convert-llama2c-to-ggml > build.log
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
        pip install -q "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
)
export LLAMA_CPP_LIB_PATH="$llama_cpp_dir/build/bin"
export LLAMA_CPP_BIN="$llama_cpp_dir/build/bin"
export LLAMA_CPP_SRC="$llama_cpp_dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
