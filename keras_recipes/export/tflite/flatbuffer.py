"""Surgery on a converted `.tflite` flatbuffer: one int8 copy of a tied embedding table.

The TFLite converter stores a tied LLaMA embedding twice when it quantizes
(once per kind of use); `share_tied_int8_table` rewrites the graph through
TFLite's flatbuffer schema so both uses read one table, and `_pack` writes
the object model back with the buffer alignment the converter uses.
"""

from __future__ import annotations

import numpy as np


def share_tied_int8_table(flatbuffer: bytes, vocab_size: int, dim: int) -> bytes:
    """One int8 copy of a tied embedding table instead of two.

    Dynamic-range quantization quantizes the table once per kind of use:
    per row for the output `FULLY_CONNECTED` (`x @ E^T`) and per tensor for
    the `GATHER` of the input embeddings, two `(vocab, dim)` int8 buffers.
    This rewrites every such gather to read the per-row table and scale the
    rows it picks by their own scales (`GATHER`, `CAST`, `GATHER` of the
    scales, `MUL` in place of its `DEQUANTIZE`); the per-tensor buffer is
    dropped. The embeddings are then the output layer's dequantized rows
    exactly. A graph of another shape is returned unchanged.
    """
    from keras_recipes._compat import tflite_flatbuffer_utils, tflite_schema

    schema, flatbuffer_utils = tflite_schema(), tflite_flatbuffer_utils()

    ops_ = schema.BuiltinOperator
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))

    def code(op):
        c = model.operatorCodes[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    def is_table(tensor, per_row):
        q = tensor.quantization
        rows = per_row and q is not None and q.scale is not None and len(q.scale) == vocab_size
        flat = not per_row and q is not None and q.scale is not None and len(q.scale) == 1
        return (
            tensor.type == schema.TensorType.INT8
            and list(tensor.shape) == [vocab_size, dim]
            and model.buffers[tensor.buffer].data is not None
            and (rows and q.quantizedDimension == 0 or flat)
        )

    heads, gathers = [], []
    for graph in model.subgraphs:
        for op in graph.operators:
            if code(op) == ops_.FULLY_CONNECTED and is_table(graph.tensors[op.inputs[1]], True):
                heads.append(graph.tensors[op.inputs[1]])
            elif code(op) == ops_.GATHER and is_table(graph.tensors[op.inputs[0]], False):
                users = [o for o in graph.operators if op.outputs[0] in list(o.inputs)]
                options = op.builtinOptions or schema.GatherOptionsT()
                if len(users) != 1 or code(users[0]) != ops_.DEQUANTIZE or options.axis:
                    return flatbuffer
                gathers.append((graph, op, users[0]))
    if not gathers or len({t.buffer for t in heads}) != 1:
        return flatbuffer
    head = heads[0]
    old_buffers = {graph.tensors[op.inputs[0]].buffer for graph, op, _ in gathers}

    def dequantized(tensor):
        values = np.frombuffer(model.buffers[tensor.buffer].data.tobytes(), np.int8)
        scale = np.asarray(tensor.quantization.scale, np.float32)
        return values.reshape(vocab_size, dim) * (scale[:, None] if scale.size > 1 else scale)

    # Both must hold the same matrix (one quantization step apart), not, say, a
    # copy the converter pre-multiplied by a scale.
    head_values = dequantized(head)
    for graph, op, _ in gathers:
        table = graph.tensors[op.inputs[0]]
        step = float(table.quantization.scale[0])
        if not np.abs(dequantized(table) - head_values).max() <= step:
            return flatbuffer
    for graph in model.subgraphs:  # nothing else may read the per-tensor table
        for op in graph.operators:
            for i in op.inputs:
                if i >= 0 and graph.tensors[i].buffer in old_buffers:
                    if all(op is not g[1] for g in gathers):
                        return flatbuffer

    def opcode(builtin):
        for i, c in enumerate(model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                return i
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(c)
        return len(model.operatorCodes) - 1

    def new_tensor(graph, name, shape, dtype, buffer=0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, np.int32), dtype, buffer
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def new_op(builtin, inputs, outputs, options_type=0, options=None):
        op = schema.OperatorT()
        op.opcodeIndex = opcode(builtin)
        op.inputs, op.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    scales = np.asarray(head.quantization.scale, np.float32).reshape(vocab_size, 1)
    scale_buffer = schema.BufferT()
    scale_buffer.data = np.frombuffer(scales.tobytes(), np.uint8)
    model.buffers.append(scale_buffer)
    float32 = schema.TensorType.FLOAT32
    for graph, gather, dequantize in gathers:
        table = graph.tensors[gather.inputs[0]]
        table.buffer, table.quantization = head.buffer, head.quantization
        picked = graph.tensors[gather.outputs[0]]
        picked.quantization = None  # raw int8 rows; the row scales come next
        shape = list(picked.shape)
        rows = new_tensor(graph, "tied_embedding/rows", shape, float32)
        table_scales = new_tensor(
            graph, "tied_embedding/scales", [vocab_size, 1], float32, len(model.buffers) - 1
        )
        row_scales = new_tensor(graph, "tied_embedding/row_scales", [*shape[:-1], 1], float32)
        mul_options = schema.MulOptionsT()
        replacement = [
            new_op(ops_.CAST, [gather.outputs[0]], [rows]),
            new_op(
                ops_.GATHER,
                [table_scales, gather.inputs[1]],
                [row_scales],
                schema.BuiltinOptions.GatherOptions,
                gather.builtinOptions,
            ),
            new_op(
                ops_.MUL,
                [rows, row_scales],
                list(dequantize.outputs),
                schema.BuiltinOptions.MulOptions,
                mul_options,
            ),
        ]
        at = next(i for i, op in enumerate(graph.operators) if op is dequantize)
        graph.operators[at : at + 1] = replacement
    for i in old_buffers:
        model.buffers[i].data = None
    return _pack(model)


def _pack(model) -> bytes:
    """Serializes a flatbuffer object model, constant buffers aligned to 16 bytes as the
    converter writes them (flatbuffers' Python builder aligns a vector to its item size)."""
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):
            if x.dtype != np.uint8 or x.size < 16:
                return super().CreateNumpyVector(x)
            payload = x.tobytes()
            self.StartVector(1, len(payload), 16)
            self.head = self.head - len(payload)
            self.Bytes[self.head : self.head + len(payload)] = payload
            self.vectorNumElems = len(payload)
            return self.EndVector()

    builder = AlignedBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
