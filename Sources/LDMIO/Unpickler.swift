// Unpickler.swift — a restricted pickle reader for the `data.pkl` of a PyTorch checkpoint: it
// builds plain values (ints, strings, tuples, lists, dicts) and tensor views, and never runs code.
//
// What it accepts matches PyTorch's `torch/_weights_only_unpickler.py` (the unpickler behind
// `torch.load(weights_only=True)`): a GLOBAL is looked up in a fixed table of names and becomes a
// case of `PickleGlobal`; every other name is refused with one line naming it. REDUCE runs only
// the Swift meaning of an allowed callable (`_rebuild_tensor_v2` records a strided view of a
// storage, `OrderedDict()` makes an empty dict, …); BUILD is accepted only on dicts and tensors and
// ignored, as torch does for an OrderedDict's `_metadata`. Opcodes are those of protocols 2–5 that
// torch.save and pickle.dump write for such data (Python's `Lib/pickletools.py` documents each).
//
// Containers live in an arena and values refer to them by index, so a value never owns a deep
// tree: releasing a hostile nesting of a million tuples costs no recursion, and a dict that
// contains itself is just an index. Every count and size read from the file is bounded (see
// `UnpicklerLimits`), so a bad pickle gives one error, never a trap or a huge allocation.

/// Reads one pickle; `load()` returns its top-level value, with the containers in `arena` and the
/// tensors in `tensors`.
struct RestrictedUnpickler {
    let path: String
    let input: UnsafeRawBufferPointer
    /// The byte range in the file of record `data/<key>`, or nil when there is none.
    let storageRecord: (String) -> Range<Int>?

    private(set) var arena = PickleArena()
    private(set) var storages: [TorchStorage] = []
    private(set) var tensors: [TorchTensorView] = []

    private var position = 0
    private var opcodeOffset = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var storageIndex: [String: Int] = [:]
    private var stringBytes = 0

    init(path: String, input: UnsafeRawBufferPointer, storageRecord: @escaping (String) -> Range<Int>?) {
        self.path = path
        self.input = input
        self.storageRecord = storageRecord
    }

    // MARK: The opcode loop

    /// Runs the pickle to its STOP and returns the value it leaves.
    mutating func load() throws -> PickleValue {
        while true {
            opcodeOffset = position
            let op = try byte()
            switch op {
            case 0x80: // PROTO
                let version = try byte()
                guard version <= 5 else { throw invalid("pickle protocol \(version) is newer than 5") }
            case 0x95: // FRAME: a length prefix for the next opcodes; nothing to do
                let length = try uint(8)
                guard length <= UInt64(input.count - position) else { throw invalid("frame of \(length) bytes runs past the end") }
            case 0x2E: // STOP
                return try pop()
            case 0x28: // MARK
                guard marks.count < UnpicklerLimits.marks else { throw limit("MARK nesting", UnpicklerLimits.marks) }
                marks.append(stack.count)
            case 0x30: // POP
                _ = try pop()
            case 0x31: // POP_MARK
                _ = try popMark()
            case 0x32: // DUP
                try push(try top())

            case 0x4E: try push(.none)        // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false)) // NEWFALSE
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x4B: try push(.int(Int(try byte())))                               // BININT1
            case 0x4D: try push(.int(Int(try uint(2))))                              // BININT2
            case 0x8A: try push(try long(length: Int(try byte())))                   // LONG1
            case 0x8B: try push(try long(length: try length(4, signed: true)))       // LONG4
            case 0x47: try push(.float(Double(bitPattern: try uint(8, bigEndian: true))))  // BINFLOAT

            case 0x58: try push(.string(try text(try length(4))))                    // BINUNICODE
            case 0x8C: try push(.string(try text(Int(try byte()))))                  // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(try length(8))))                    // BINUNICODE8
            case 0x54: try push(.string(try text(try length(4, signed: true))))      // BINSTRING (decoded as torch.load does: UTF-8)
            case 0x55: try push(.string(try text(Int(try byte()))))                  // SHORT_BINSTRING
            case 0x42: try push(.bytes(try data(try length(4))))                     // BINBYTES
            case 0x43: try push(.bytes(try data(Int(try byte()))))                   // SHORT_BINBYTES
            case 0x8E: try push(.bytes(try data(try length(8))))                     // BINBYTES8

            case 0x29: try push(try newTuple([]))              // EMPTY_TUPLE
            case 0x74: try push(try newTuple(try popMark()))   // TUPLE
            case 0x85: try push(try newTuple(try pop(1)))      // TUPLE1
            case 0x86: try push(try newTuple(try pop(2)))      // TUPLE2
            case 0x87: try push(try newTuple(try pop(3)))      // TUPLE3
            case 0x5D: try push(try newList([]))               // EMPTY_LIST
            case 0x6C: try push(try newList(try popMark()))    // LIST
            case 0x7D: try push(try newDict([]))               // EMPTY_DICT
            case 0x64: try push(try newDict(try popMark()))    // DICT
            case 0x8F: try push(.set)                          // EMPTY_SET
            case 0x91: _ = try popMark(); try push(.set)       // FROZENSET
            case 0x61: // APPEND
                let item = try pop()
                try appendToList([item])
            case 0x65: // APPENDS
                try appendToList(try popMark())
            case 0x73: // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value])
            case 0x75: // SETITEMS
                try setItems(try popMark())
            case 0x90: // ADDITEMS
                let items = try popMark()
                guard case .set = try top() else { throw invalid("ADDITEMS on \(try top().kind)") }
                _ = items

            case 0x71: try memoize(at: Int(try byte()))                 // BINPUT
            case 0x72: try memoize(at: Int(try uint(4)))                // LONG_BINPUT
            case 0x94: try memoize(at: memo.count)                      // MEMOIZE
            case 0x68: try push(try memoized(Int(try byte())))          // BINGET
            case 0x6A: try push(try memoized(Int(try uint(4))))         // LONG_BINGET

            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                try push(.global(try resolve(module: module, name: name)))
            case 0x93: // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
                    throw invalid("STACK_GLOBAL needs two strings")
                }
                try push(.global(try resolve(module: module, name: name)))
            case 0x69: // INST: module and name, then a call; name the global if it is not allowed
                let module = try line(), name = try line()
                _ = try resolve(module: module, name: name)
                throw TorchCheckpointError.unsupportedOpcode(path: path, opcode: op, offset: opcodeOffset)
            case 0x52: // REDUCE
                let args = try tupleItems(try pop(), "REDUCE arguments")
                let callable = try pop()
                try push(try call(callable, args))
            case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                let args = try tupleItems(try pop(), "NEWOBJ arguments")
                let cls = try pop()
                try push(try newObject(cls, args))
            case 0x62: // BUILD: set state on the object below; only the harmless cases
                let state = try pop()
                try build(try top(), state: state)
            case 0x51: // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                throw TorchCheckpointError.unsupportedOpcode(path: path, opcode: op, offset: opcodeOffset)
            }
        }
    }

    // MARK: Reading the input

    private mutating func byte() throws -> UInt8 {
        guard position < input.count else { throw invalid("the pickle ends without STOP") }
        defer { position += 1 }
        return input[position]
    }

    /// An unsigned little-endian (or big-endian) integer of `size` bytes.
    private mutating func uint(_ size: Int, bigEndian: Bool = false) throws -> UInt64 {
        let bytes = try take(size)
        var value: UInt64 = 0
        for i in 0..<size {
            value |= UInt64(bytes[bigEndian ? size - 1 - i : i]) << (8 * UInt64(i))
        }
        return value
    }

    /// A length prefix of `size` bytes, checked against the bytes left.
    private mutating func length(_ size: Int, signed: Bool = false) throws -> Int {
        let raw = try uint(size)
        let value: Int64 = signed ? Int64(Int32(truncatingIfNeeded: raw)) : Int64(bitPattern: raw)
        guard value >= 0, raw <= UInt64(input.count - position) else {
            throw invalid("length \(signed ? String(value) : String(raw)) runs past the end of the pickle")
        }
        return Int(value)
    }

    private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= input.count - position else { throw invalid("the pickle ends inside an opcode") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: input[position..<position + count])
    }

    private mutating func data(_ count: Int) throws -> [UInt8] {
        try countString(count)
        return Array(try take(count))
    }

    /// UTF-8 text (invalid sequences become U+FFFD).
    private mutating func text(_ count: Int) throws -> String {
        try countString(count)
        return String(decoding: try take(count), as: UTF8.self)
    }

    private mutating func countString(_ count: Int) throws {
        guard count <= UnpicklerLimits.stringBytes else { throw limit("a string of \(count) bytes", UnpicklerLimits.stringBytes) }
        stringBytes += count
        guard stringBytes <= UnpicklerLimits.totalStringBytes else { throw limit("string bytes", UnpicklerLimits.totalStringBytes) }
    }

    /// A GLOBAL operand: text up to a newline.
    private mutating func line() throws -> String {
        let rest = input.count - position
        var n = 0
        while n < min(rest, UnpicklerLimits.globalNameBytes + 1), input[position + n] != 0x0A { n += 1 }
        guard n < rest, input[position + n] == 0x0A else {
            throw invalid("GLOBAL operand without a newline in its first \(UnpicklerLimits.globalNameBytes) bytes")
        }
        defer { position += n + 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: input[position..<position + n]), as: UTF8.self)
    }

    /// LONG1/LONG4: a little-endian two's-complement integer of `length` bytes.
    private mutating func long(length: Int) throws -> PickleValue {
        let bytes = try take(length)
        guard length > 0 else { return .int(0) }
        let negative = bytes[length - 1] & 0x80 != 0
        // Bytes past the eighth must be pure sign extension for the value to fit an Int.
        if length > 8, bytes[8...].contains(where: { $0 != (negative ? 0xFF : 0) }) { return .bigInt }
        var value: UInt64 = negative ? ~0 : 0
        for i in 0..<min(length, 8) {
            value &= ~(0xFF << (8 * UInt64(i)))
            value |= UInt64(bytes[i]) << (8 * UInt64(i))
        }
        let signed = Int64(bitPattern: value)
        if length > 8, (signed < 0) != negative { return .bigInt }
        return .int(Int(signed))
    }

    // MARK: The stack and memo

    private mutating func push(_ value: PickleValue) throws {
        guard stack.count < UnpicklerLimits.stackDepth else { throw limit("stack depth", UnpicklerLimits.stackDepth) }
        stack.append(value)
    }

    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw invalid("stack underflow") }
        return stack[stack.count - 1]
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw invalid("stack underflow") }
        return stack.removeLast()
    }

    /// The top `n` values, deepest first.
    private mutating func pop(_ n: Int) throws -> [PickleValue] {
        guard stack.count - n >= (marks.last ?? 0) else { throw invalid("stack underflow") }
        defer { stack.removeLast(n) }
        return Array(stack[(stack.count - n)...])
    }

    /// The values above the last MARK, deepest first; the MARK is removed.
    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw invalid("no MARK on the stack") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private mutating func memoize(at index: Int) throws {
        let value = try top()
        if memo[index] == nil, memo.count >= UnpicklerLimits.memoEntries {
            throw limit("memo entries", UnpicklerLimits.memoEntries)
        }
        memo[index] = value
    }

    private func memoized(_ index: Int) throws -> PickleValue {
        guard let value = memo[index] else { throw invalid("memo entry \(index) was never stored") }
        return value
    }

    // MARK: Containers

    private mutating func reserveContainer() throws {
        guard arena.count < UnpicklerLimits.containers else { throw limit("containers", UnpicklerLimits.containers) }
    }

    private mutating func newTuple(_ items: [PickleValue]) throws -> PickleValue {
        try reserveContainer()
        arena.tuples.append(items)
        return .tuple(arena.tuples.count - 1)
    }

    private mutating func newList(_ items: [PickleValue]) throws -> PickleValue {
        try reserveContainer()
        arena.lists.append(items)
        return .list(arena.lists.count - 1)
    }

    private mutating func newDict(_ items: [PickleValue]) throws -> PickleValue {
        guard items.count % 2 == 0 else { throw invalid("DICT with an odd number of items") }
        try reserveContainer()
        var dict = PickleDict()
        for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
        arena.dicts.append(dict)
        return .dict(arena.dicts.count - 1)
    }

    /// APPEND/APPENDS: only to lists (torch refuses others too).
    private mutating func appendToList(_ items: [PickleValue]) throws {
        guard case let .list(i) = try top() else { throw invalid("APPEND to \(try top().kind)") }
        arena.lists[i].append(contentsOf: items)
    }

    /// SETITEM/SETITEMS: only into dicts.
    private mutating func setItems(_ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw invalid("SETITEMS with an odd number of items") }
        guard case let .dict(d) = try top() else { throw invalid("SETITEM on \(try top().kind)") }
        for i in stride(from: 0, to: items.count, by: 2) { arena.dicts[d].set(items[i], items[i + 1]) }
    }

    private func tupleItems(_ value: PickleValue, _ what: String) throws -> [PickleValue] {
        guard case let .tuple(i) = value else { throw invalid("\(what) are \(value.kind), expected a tuple") }
        return arena.tuples[i]
    }

    // MARK: Globals and calls

    private func resolve(module: String, name: String) throws -> PickleGlobal {
        switch PickleGlobal.resolve(module: module, name: name) {
        case let .allowed(g): return g
        case let .unsupported(what):
            throw TorchCheckpointError.unsupportedGlobal(path: path, name: module + "." + name, what: what)
        case .forbidden:
            throw TorchCheckpointError.forbiddenGlobal(path: path, name: module + "." + name)
        }
    }

    /// REDUCE: `callable(*args)` for the allowed callables, in Swift.
    private mutating func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case let .global(g) = callable else { throw invalid("REDUCE calls \(callable.kind)") }
        func expect(_ counts: ClosedRange<Int>) throws {
            guard counts.contains(args.count) else { throw invalid("\(g) called with \(args.count) arguments") }
        }
        switch g {
        case .orderedDict, .counter:
            // OrderedDict() as pickle writes it (items follow by SETITEMS); Counter({…}) keeps the dict.
            if args.isEmpty { return try newDict([]) }
            if g == .counter, args.count == 1, case .dict = args[0] { return args[0] }
            throw invalid("\(g) called with \(args.count == 1 ? args[0].kind : "\(args.count) arguments")")
        case .rebuildTensor:
            try expect(4...4)
            return try rebuildTensor(args, dtype: nil, metadata: nil)
        case .rebuildTensorV2:
            try expect(6...7)
            return try rebuildTensor(args, dtype: nil, metadata: args.count == 7 ? args[6] : nil)
        case .rebuildTensorV3:
            try expect(7...8)
            guard case let .global(.dtype(name, dtype)) = args[6] else { throw invalid("\(g): argument 7 is \(args[6].kind), expected a dtype") }
            guard let dtype else { throw TorchCheckpointError.unsupportedTensor(path: path, detail: "dtype \(name) has no Float conversion") }
            return try rebuildTensor(args, dtype: dtype, metadata: args.count == 8 ? args[7] : nil)
        case .rebuildParameter, .rebuildParameterWithState:
            try expect(g == .rebuildParameter ? 3...3 : 4...4)
            guard case .tensor = args[0] else { throw invalid("\(g) of \(args[0].kind)") }
            return args[0]
        case .rebuildFromTypeV2:
            // (rebuild function, torch.Tensor or Parameter, its arguments, Python attributes → ignored)
            try expect(4...4)
            guard case let .global(inner) = args[0],
                  [.rebuildTensor, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState].contains(inner)
            else { throw invalid("\(g) of \(args[0].kind)") }
            guard case let .global(type) = args[1], type == .tensorType || type == .parameterType else {
                throw TorchCheckpointError.unsupportedTensor(path: path, detail: "tensor subclass \(args[1].kind)")
            }
            return try call(args[0], try tupleItems(args[2], "\(g) arguments"))
        case .size:
            try expect(0...1)
            if args.isEmpty { return try newTuple([]) }
            _ = try ints(args[0], "torch.Size")
            return args[0]
        case .device:
            try expect(1...2)
            return .object("torch.device")
        case .codecsEncode:
            // _codecs.encode(text, "latin1"): how protocol 2 pickles bytes.
            try expect(1...2)
            guard case let .string(text) = args[0] else { throw invalid("\(g) of \(args[0].kind)") }
            if args.count == 2 {
                guard case let .string(encoding) = args[1], ["latin1", "latin-1", "iso-8859-1"].contains(encoding.lowercased()) else {
                    throw invalid("\(g) with an encoding other than latin1")
                }
            }
            var bytes: [UInt8] = []
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else { throw invalid("\(g): a character above U+00FF") }
                bytes.append(UInt8(scalar.value))
            }
            try countString(bytes.count)
            return .bytes(bytes)
        case .bytearray:
            try expect(0...1)
            if args.isEmpty { return .bytes([]) }
            guard case .bytes = args[0] else { throw invalid("\(g) of \(args[0].kind)") }
            return args[0]
        case .set:
            try expect(0...1)
            return .set
        case .complex:
            try expect(0...2)
            return .object("complex")
        case .tensorType, .parameterType, .storageType, .dtype:
            throw invalid("REDUCE calls \(g)")
        }
    }

    /// NEWOBJ: `cls.__new__(cls, *args)` for OrderedDict, Counter and Parameter only.
    private mutating func newObject(_ cls: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        switch cls {
        case .global(.orderedDict), .global(.counter):
            return try newDict([])
        case .global(.parameterType):
            guard (1...2).contains(args.count), case .tensor = args[0] else { throw invalid("Parameter of unexpected arguments") }
            return args[0]
        default:
            throw invalid("NEWOBJ of \(cls.kind)")
        }
    }

    /// BUILD: an OrderedDict's attributes (`_metadata`) and a Parameter's state are ignored;
    /// a legacy `Tensor.set_` state is not supported.
    private func build(_ object: PickleValue, state: PickleValue) throws {
        switch object {
        case .dict:
            return
        case .tensor:
            if case let .tuple(i) = state, arena.tuples[i].count == 4 {
                throw TorchCheckpointError.unsupportedTensor(path: path, detail: "legacy Tensor.set_ state")
            }
        default:
            throw invalid("BUILD on \(object.kind)")
        }
    }

    // MARK: Storages and tensors

    /// BINPERSID: ("storage", storage class, key, location, numel) → the record `data/<key>`.
    private mutating func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case let .tuple(t) = pid, arena.tuples[t].count == 5 else {
            throw invalid("persistent id is \(pid.kind), expected a (\"storage\", type, key, location, numel) tuple")
        }
        let items = arena.tuples[t]
        guard case "storage" = try asciiString(items[0]) else { throw invalid("persistent id is not a storage") }
        guard case let .global(.storageType(typeName, type)) = items[1] else { throw invalid("storage type is \(items[1].kind)") }
        let key = try asciiString(items[2])
        guard case let .int(numel) = items[4], numel >= 0 else { throw invalid("storage \(key): element count is \(items[4].kind)") }
        if case .unreadable = type {
            throw TorchCheckpointError.unsupportedTensor(path: path, detail: "storage type \(typeName)")
        }
        if let existing = storageIndex[key] {
            guard storages[existing].type == type else {
                throw TorchCheckpointError.invalidTensor(path: path, detail: "storage \(key) is viewed as two different types")
            }
            return .storage(existing)
        }
        let elementSize: Int
        switch type {
        case let .typed(dtype): elementSize = dtype.byteSize
        case .untyped, .unreadable: elementSize = 1
        }
        let (byteCount, overflow) = numel.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw TorchCheckpointError.invalidTensor(path: path, detail: "storage \(key) of \(numel) elements overflows") }
        guard let record = storageRecord(key) else { throw TorchCheckpointError.missingEntry(path: path, entry: "data/" + key) }
        guard record.count >= byteCount else {
            throw TorchCheckpointError.invalidTensor(path: path,
                detail: "storage \(key) needs \(byteCount) bytes but its record data/\(key) holds \(record.count)")
        }
        storages.append(TorchStorage(key: key, type: type, bytes: record.lowerBound..<record.lowerBound + byteCount))
        storageIndex[key] = storages.count - 1
        return .storage(storages.count - 1)
    }

    /// `_rebuild_tensor[_v2|_v3](storage, storage_offset, size, stride, …)`: checks that the view
    /// lies inside the storage and records it.
    private mutating func rebuildTensor(_ args: [PickleValue], dtype givenType: SafeTensorsDType?, metadata: PickleValue?) throws -> PickleValue {
        guard case let .storage(s) = args[0] else { throw invalid("tensor storage is \(args[0].kind)") }
        let storage = storages[s]
        let dtype: SafeTensorsDType
        switch (givenType, storage.type) {
        case let (given?, _): dtype = given
        case let (nil, .typed(storageType)): dtype = storageType
        default: throw invalid("storage \(storage.key) has no element type")
        }
        guard case let .int(offset) = args[1], offset >= 0 else { throw invalid("tensor storage offset is \(args[1].kind)") }
        let shape = try ints(args[2], "tensor size")
        let strides = try ints(args[3], "tensor stride")
        let path = self.path
        let bad: (String) -> TorchCheckpointError = {
            TorchCheckpointError.invalidTensor(path: path, detail: "view of storage \(storage.key): \($0)")
        }
        guard shape.count == strides.count else { throw bad("\(shape.count) sizes but \(strides.count) strides") }
        guard shape.count <= UnpicklerLimits.tensorRank else { throw bad("rank \(shape.count) is above \(UnpicklerLimits.tensorRank)") }
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else { throw bad("negative size or stride") }
        // The element count, and the last element the view reaches: offset + Σ (size_d − 1)·stride_d.
        var count = 1, last = offset, overflow = false
        for (size, stride) in zip(shape, strides) {
            var o1 = false, o2 = false, o3 = false
            (count, o1) = count.multipliedReportingOverflow(by: size)
            if size > 0 {
                let step: Int
                (step, o2) = (size - 1).multipliedReportingOverflow(by: stride)
                (last, o3) = last.addingReportingOverflow(step)
            }
            overflow = overflow || o1 || o2 || o3
        }
        guard !overflow else { throw bad("element count or extent overflows") }
        let available = storage.bytes.count / dtype.byteSize
        if count > 0, last >= available {
            throw bad("reaches element \(last) but the storage holds \(available) \(dtype.rawValue) elements")
        }
        if case let .dict(d)? = metadata, arena.dicts[d].values.contains(where: { if case .bool(true) = $0 { return true } else { return false } }) {
            throw TorchCheckpointError.unsupportedTensor(path: path, detail: "a tensor with its conj/neg bit set")
        }
        tensors.append(TorchTensorView(dtype: dtype, storage: s, offset: offset, shape: shape, strides: strides, elementCount: count))
        return .tensor(tensors.count - 1)
    }

    private func ints(_ value: PickleValue, _ what: String) throws -> [Int] {
        try tupleItems(value, what).map {
            guard case let .int(i) = $0 else { throw invalid("\(what) holds \($0.kind)") }
            return i
        }
    }

    /// A string, or bytes read as ASCII (Python 2 pickles).
    private func asciiString(_ value: PickleValue) throws -> String {
        switch value {
        case let .string(s): return s
        case let .bytes(b): return String(decoding: b, as: UTF8.self)
        default: throw invalid("expected a string, found \(value.kind)")
        }
    }

    // MARK: Errors

    private func invalid(_ detail: String) -> TorchCheckpointError {
        .invalidPickle(path: path, offset: opcodeOffset, detail: detail)
    }

    private func limit(_ what: String, _ bound: Int) -> TorchCheckpointError {
        .limitExceeded(path: path, what: what, limit: bound)
    }
}

/// Python's names for the pickle opcodes (Lib/pickletools.py), for error messages.
