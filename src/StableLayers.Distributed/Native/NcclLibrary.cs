using System.Runtime.InteropServices;

namespace StableLayers.Distributed.Native;

/// <summary>
/// The part of NCCL 2's C API the trainer uses (nccl.h), bound at run time from libnccl.so.2. Values from nccl.h:
/// ncclResult_t ncclSuccess = 0, ncclInProgress = 7; ncclDataType_t ncclFloat32 = 7, ncclFloat64 = 8; ncclRedOp_t
/// ncclSum = 0; NCCL_UNIQUE_ID_BYTES = 128.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    internal const string DefaultName = "libnccl.so.2";

    internal const int Success = 0;
    internal const int Float32 = 7;
    internal const int Float64 = 8;
    internal const int Sum = 0;
    internal const int UniqueIdBytes = 128;

    private NcclLibrary(string name, IntPtr handle)
    {
        Name = name;
        IntPtr Fn(string symbol) => NativeLibrary.GetExport(handle, symbol);
        GetVersion = (delegate* unmanaged<int*, int>)Fn("ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<UniqueId*, int>)Fn("ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Fn("ncclCommInitRank");
        CommDestroy = (delegate* unmanaged<IntPtr, int>)Fn("ncclCommDestroy");
        CommAbort = (delegate* unmanaged<IntPtr, int>)Fn("ncclCommAbort");
        AllReduce = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclAllReduce");
        GetErrorString = (delegate* unmanaged<int, IntPtr>)Fn("ncclGetErrorString");
    }

    internal string Name { get; }

    internal delegate* unmanaged<int*, int> GetVersion { get; }

    internal delegate* unmanaged<UniqueId*, int> GetUniqueId { get; }

    /// <summary>ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId (by value, 128 bytes), int rank).</summary>
    internal delegate* unmanaged<IntPtr*, int, UniqueId, int, int> CommInitRank { get; }

    internal delegate* unmanaged<IntPtr, int> CommDestroy { get; }

    internal delegate* unmanaged<IntPtr, int> CommAbort { get; }

    /// <summary>ncclAllReduce(sendbuff, recvbuff, size_t count, datatype, op, comm, cudaStream_t stream).</summary>
    internal delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> AllReduce { get; }

    internal delegate* unmanaged<int, IntPtr> GetErrorString { get; }

    /// <summary>
    /// Loads NCCL; throws <see cref="NcclUnavailableException"/> ("libnccl.so.2 not found: ...") when the loader
    /// cannot find it. NCCL is not part of libtorch's CUDA package: it comes from NVIDIA's libnccl2 package.
    /// </summary>
    internal static NcclLibrary Load(string name = DefaultName)
    {
        if (!NativeLibrary.TryLoad(name, out var handle))
        {
            throw new NcclUnavailableException(
                $"{name} not found: install NCCL 2 (NVIDIA's libnccl2 package, or a directory with {name} on LD_LIBRARY_PATH) " +
                "on every machine, or choose the mpi backend (CUDA tensors are then reduced through host memory)");
        }

        if (!NativeLibrary.TryGetExport(handle, "ncclCommInitRank", out _))
        {
            throw new NcclUnavailableException($"{name} has no ncclCommInitRank: it is not NCCL 2");
        }

        return new NcclLibrary(name, handle);
    }

    internal void Check(int result, string call)
    {
        if (result != Success)
        {
            string text = Marshal.PtrToStringUTF8(GetErrorString(result)) ?? "unknown error";
            throw new InvalidOperationException($"{call} failed: {text} (ncclResult_t {result})");
        }
    }

    /// <summary>ncclUniqueId: <c>struct { char internal[128]; }</c>, passed by value to ncclCommInitRank.</summary>
    [StructLayout(LayoutKind.Sequential, Size = UniqueIdBytes)]
    internal struct UniqueId
    {
        private fixed byte _bytes[UniqueIdBytes];

        internal static UniqueId FromBytes(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length != UniqueIdBytes)
            {
                throw new ArgumentException($"an NCCL unique id has {UniqueIdBytes} bytes, got {bytes.Length}", nameof(bytes));
            }

            var id = default(UniqueId);
            bytes.CopyTo(new Span<byte>(id._bytes, UniqueIdBytes));
            return id;
        }

        internal byte[] ToBytes()
        {
            fixed (byte* p = _bytes)
            {
                return new ReadOnlySpan<byte>(p, UniqueIdBytes).ToArray();
            }
        }
    }
}

/// <summary>
/// The CUDA driver API (libcuda.so.1, installed with every NVIDIA driver, unlike the runtime libcudart whose file
/// name libtorch's package hashes). Used to make a device's primary context (the one the CUDA runtime, libtorch and
/// NCCL use) current on the calling thread and to wait for the legacy default stream.
/// </summary>
internal sealed unsafe class CudaDriver
{
    internal const string DefaultName = "libcuda.so.1";

    private CudaDriver(IntPtr handle)
    {
        IntPtr Fn(string symbol) => NativeLibrary.GetExport(handle, symbol);
        Init = (delegate* unmanaged<uint, int>)Fn("cuInit");
        DeviceGetCount = (delegate* unmanaged<int*, int>)Fn("cuDeviceGetCount");
        DeviceGet = (delegate* unmanaged<int*, int, int>)Fn("cuDeviceGet");
        // cuda.h maps cuDevicePrimaryCtxRetain/cuCtxSetCurrent/cuStreamSynchronize to these unversioned exports.
        PrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)Fn("cuDevicePrimaryCtxRetain");
        CtxSetCurrent = (delegate* unmanaged<IntPtr, int>)Fn("cuCtxSetCurrent");
        StreamSynchronize = (delegate* unmanaged<IntPtr, int>)Fn("cuStreamSynchronize");
    }

    internal delegate* unmanaged<uint, int> Init { get; }

    internal delegate* unmanaged<int*, int> DeviceGetCount { get; }

    internal delegate* unmanaged<int*, int, int> DeviceGet { get; }

    internal delegate* unmanaged<IntPtr*, int, int> PrimaryCtxRetain { get; }

    internal delegate* unmanaged<IntPtr, int> CtxSetCurrent { get; }

    internal delegate* unmanaged<IntPtr, int> StreamSynchronize { get; }

    internal static CudaDriver Load()
    {
        if (!NativeLibrary.TryLoad(DefaultName, out var handle))
        {
            throw new NcclUnavailableException($"{DefaultName} not found: NCCL needs an NVIDIA driver (no CUDA device on this machine?)");
        }

        var driver = new CudaDriver(handle);
        CudaDriver.Check(driver.Init(0), "cuInit");
        return driver;
    }

    internal int DeviceCount()
    {
        int count = 0;
        CudaDriver.Check(DeviceGetCount(&count), "cuDeviceGetCount");
        return count;
    }

    /// <summary>The primary context of device <paramref name="ordinal"/> (retained for the process's lifetime).</summary>
    internal IntPtr PrimaryContext(int ordinal)
    {
        int device = 0;
        Check(DeviceGet(&device, ordinal), "cuDeviceGet");
        IntPtr context = IntPtr.Zero;
        Check(PrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        return context;
    }

    internal static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new InvalidOperationException($"{call} failed: CUresult {result}");
        }
    }
}

/// <summary>NCCL (or the CUDA driver it needs) cannot be used in this process.</summary>
public sealed class NcclUnavailableException : Exception
{
    public NcclUnavailableException(string message)
        : base(message)
    {
    }

    public NcclUnavailableException()
    {
    }

    public NcclUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
