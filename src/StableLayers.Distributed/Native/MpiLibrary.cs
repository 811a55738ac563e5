using System.Runtime.InteropServices;
using System.Text;

namespace StableLayers.Distributed.Native;

/// <summary>
/// Open MPI's C API, bound at run time (no build-time dependency: machines without MPI still build and run single
/// process). Open MPI's ABI makes every handle a pointer to an exported global (mpi.h: <c>MPI_COMM_WORLD</c> is
/// <c>&amp;ompi_mpi_comm_world</c>, <c>MPI_FLOAT</c> is <c>&amp;ompi_mpi_float</c>, <c>MPI_SUM</c> is
/// <c>&amp;ompi_mpi_op_sum</c>, ...), so the handles are the addresses of those symbols, looked up here.
/// MPICH and its derivatives (libmpi.so.12) use integer handles and another set of constants; they are refused with a
/// clear message rather than guessed.
/// </summary>
internal sealed unsafe partial class MpiLibrary
{
    /// <summary>Open MPI 3-5 ship libmpi.so.40; the unversioned name is the dev symlink; .12 is MPICH's soname.</summary>
    internal static readonly string[] DefaultNames = ["libmpi.so.40", "libmpi.so", "libmpi.so.12"];

    // mpi.h (Open MPI 4.1): enum { MPI_THREAD_SINGLE, MPI_THREAD_FUNNELED, MPI_THREAD_SERIALIZED, MPI_THREAD_MULTIPLE }.
    internal const int ThreadSerialized = 2;

    // mpi.h (Open MPI): MPI_COMM_TYPE_SHARED is the first member of the split-type enum. (MPICH: 1.)
    internal const int CommTypeShared = 0;

    internal const int Success = 0;

    // mpi.h: OPAL_MAX_ERROR_STRING 256.
    private const int MaxErrorString = 256;

    // dlopen mode bits (dlfcn.h, glibc): RTLD_NOW 0x2, RTLD_GLOBAL 0x100.
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;

    private static MpiLibrary? _shared;

    private MpiLibrary(string path, IntPtr handle)
    {
        Path = path;
        Handle = handle;
        IntPtr Global(string name) => NativeLibrary.GetExport(handle, name);
        CommWorld = Global("ompi_mpi_comm_world");
        Float = Global("ompi_mpi_float");
        Double = Global("ompi_mpi_double");
        Byte = Global("ompi_mpi_byte");
        Int = Global("ompi_mpi_int");
        OpSum = Global("ompi_mpi_op_sum");
        OpMax = Global("ompi_mpi_op_max");
        InfoNull = Global("ompi_mpi_info_null");
        ErrorsReturn = Global("ompi_mpi_errors_return");
        Initialized = (delegate* unmanaged<int*, int>)Global("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Global("MPI_Finalized");
        InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Global("MPI_Init_thread");
        Finalize = (delegate* unmanaged<int>)Global("MPI_Finalize");
        CommRank = (delegate* unmanaged<IntPtr, int*, int>)Global("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<IntPtr, int*, int>)Global("MPI_Comm_size");
        CommSplitType = (delegate* unmanaged<IntPtr, int, int, IntPtr, IntPtr*, int>)Global("MPI_Comm_split_type");
        CommFree = (delegate* unmanaged<IntPtr*, int>)Global("MPI_Comm_free");
        CommSetErrhandler = (delegate* unmanaged<IntPtr, IntPtr, int>)Global("MPI_Comm_set_errhandler");
        Allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)Global("MPI_Allreduce");
        Bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)Global("MPI_Bcast");
        Allgather = (delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int>)Global("MPI_Allgather");
        Allgatherv = (delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, IntPtr, int>)Global("MPI_Allgatherv");
        Barrier = (delegate* unmanaged<IntPtr, int>)Global("MPI_Barrier");
        AbortFn = (delegate* unmanaged<IntPtr, int, int>)Global("MPI_Abort");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Global("MPI_Error_string");
        GetLibraryVersion = (delegate* unmanaged<byte*, int*, int>)Global("MPI_Get_library_version");
    }

    /// <summary>mpi.h: <c>#define MPI_IN_PLACE ((void *) 1)</c>.</summary>
    internal static void* InPlace => (void*)1;

    internal string Path { get; }

    internal IntPtr Handle { get; }

    internal IntPtr CommWorld { get; }

    internal IntPtr Float { get; }

    internal IntPtr Double { get; }

    internal IntPtr Byte { get; }

    internal IntPtr Int { get; }

    internal IntPtr OpSum { get; }

    internal IntPtr OpMax { get; }

    internal IntPtr InfoNull { get; }

    internal IntPtr ErrorsReturn { get; }

    internal delegate* unmanaged<int*, int> Initialized { get; }

    internal delegate* unmanaged<int*, int> Finalized { get; }

    internal delegate* unmanaged<int*, byte***, int, int*, int> InitThread { get; }

    internal delegate* unmanaged<int> Finalize { get; }

    internal delegate* unmanaged<IntPtr, int*, int> CommRank { get; }

    internal delegate* unmanaged<IntPtr, int*, int> CommSize { get; }

    internal delegate* unmanaged<IntPtr, int, int, IntPtr, IntPtr*, int> CommSplitType { get; }

    internal delegate* unmanaged<IntPtr*, int> CommFree { get; }

    internal delegate* unmanaged<IntPtr, IntPtr, int> CommSetErrhandler { get; }

    /// <summary>MPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm).</summary>
    internal delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> Allreduce { get; }

    /// <summary>MPI_Bcast(buffer, count, datatype, root, comm).</summary>
    internal delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> Bcast { get; }

    /// <summary>MPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm).</summary>
    internal delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int> Allgather { get; }

    /// <summary>MPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts[], displs[], recvtype, comm).</summary>
    internal delegate* unmanaged<void*, int, IntPtr, void*, int*, int*, IntPtr, IntPtr, int> Allgatherv { get; }

    internal delegate* unmanaged<IntPtr, int> Barrier { get; }

    internal delegate* unmanaged<IntPtr, int, int> AbortFn { get; }

    internal delegate* unmanaged<int, byte*, int*, int> ErrorString { get; }

    internal delegate* unmanaged<byte*, int*, int> GetLibraryVersion { get; }

    /// <summary>The process's MPI library, loaded once (<see cref="DefaultNames"/>).</summary>
    internal static MpiLibrary Shared
    {
        get
        {
            lock (DefaultNames)
            {
                return _shared ??= Load(DefaultNames);
            }
        }
    }

    /// <summary>
    /// Loads the first of <paramref name="names"/> that the dynamic loader finds. Throws
    /// <see cref="MpiUnavailableException"/> when none is found or the library is not Open MPI.
    /// </summary>
    internal static MpiLibrary Load(IReadOnlyList<string> names)
    {
        var errors = new List<string>();
        foreach (var name in names)
        {
            // RTLD_GLOBAL: Open MPI dlopen()s its own components (btl, pml, coll ...) and those resolve symbols of
            // libmpi/libopen-pal from the global namespace; NativeLibrary.Load opens RTLD_LOCAL, which works only where
            // the components were linked against libmpi. mpi4py and Horovod load it globally for the same reason.
            IntPtr handle = dlopen(name, RtldNow | RtldGlobal);
            if (handle == IntPtr.Zero)
            {
                errors.Add($"{name}: {Marshal.PtrToStringUTF8(dlerror()) ?? "not found"}");
                continue;
            }

            if (!NativeLibrary.TryGetExport(handle, "ompi_mpi_comm_world", out _))
            {
                throw new MpiUnavailableException(
                    $"{name} is not Open MPI (it has no ompi_mpi_comm_world): MPICH-ABI libraries (MPICH, Intel MPI, MVAPICH) use integer handles, " +
                    "which StableLayers does not bind; install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) and launch with its mpirun");
            }

            return new MpiLibrary(name, handle);
        }

        throw new MpiUnavailableException(
            "the MPI library was not found (" + string.Join("; ", errors) + "): install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)");
    }

    /// <summary>"Open MPI v4.1.4, ..." (MPI_Get_library_version; callable before MPI_Init).</summary>
    internal string LibraryVersion()
    {
        // mpi.h: MPI_MAX_LIBRARY_VERSION_STRING 256.
        byte* buffer = stackalloc byte[256];
        int length = 0;
        return GetLibraryVersion(buffer, &length) == Success ? Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, 256)).Trim('\0', '\n', ' ') : "unknown";
    }

    /// <summary>MPI_Error_string for <paramref name="code"/>.</summary>
    internal string DescribeError(int code)
    {
        byte* buffer = stackalloc byte[MaxErrorString];
        int length = 0;
        return ErrorString(code, buffer, &length) == Success
            ? Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, MaxErrorString))
            : $"MPI error {code}";
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the call when <paramref name="code"/> is not MPI_SUCCESS.</summary>
    internal void Check(int code, string call)
    {
        if (code != Success)
        {
            throw new InvalidOperationException($"{call} failed: {DescribeError(code)} (MPI error {code})");
        }
    }

    // libdl.so.2 exports dlopen on every glibc (a stub forwarding to libc on glibc >= 2.34).
    [LibraryImport("libdl.so.2", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr dlopen(string file, int mode);

    [LibraryImport("libdl.so.2", EntryPoint = "dlerror")]
    private static partial IntPtr dlerror();
}

/// <summary>No usable MPI library in this process (missing, or not Open MPI).</summary>
public sealed class MpiUnavailableException : Exception
{
    public MpiUnavailableException(string message)
        : base(message)
    {
    }

    public MpiUnavailableException()
    {
    }

    public MpiUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
