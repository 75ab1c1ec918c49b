using System.Runtime.InteropServices;

namespace Platform.OnnxRuntime.Native;

/// <summary>Locates and loads <c>libonnxruntime.so.1</c> and returns its <c>OrtApiBase</c>.</summary>
internal static class OrtLibraryLoader
{
    /// <summary>File name of the ONNX Runtime shared library on Linux.</summary>
    public const string LibraryFileName = "libonnxruntime.so.1";

    /// <summary>Environment variable that points at a specific ONNX Runtime shared library.</summary>
    public const string LibraryPathVariable = "PLATFORM_ORT_LIBRARY";

    /// <summary>
    /// Loads the library, trying in order: <paramref name="explicitPath"/>, <c>$PLATFORM_ORT_LIBRARY</c>,
    /// <c>AppContext.BaseDirectory/libonnxruntime.so.1</c>, then the OS loader's default search.
    /// </summary>
    /// <returns>The library handle, the <c>OrtApiBase*</c> and the path (or name) that was loaded.</returns>
    public static (IntPtr Handle, IntPtr ApiBase, string LoadedFrom) Load(string? explicitPath)
    {
        var attempts = new List<string>();
        foreach (var (candidate, isName) in Candidates(explicitPath))
        {
            // A bare name goes to dlopen's own search (LD_LIBRARY_PATH, ld.so.cache); a path must exist.
            if (!isName && !File.Exists(candidate))
            {
                attempts.Add($"{candidate}: file not found");
                // An explicit choice that is missing is a configuration error, not a reason to pick another library.
                if (candidate == explicitPath || candidate == Environment.GetEnvironmentVariable(LibraryPathVariable))
                {
                    throw LoadFailure(attempts);
                }
                continue;
            }

            IntPtr handle;
            try
            {
                handle = NativeLibrary.Load(candidate);
            }
            catch (Exception ex) when (ex is DllNotFoundException or BadImageFormatException)
            {
                // The loader's message carries dlerror(), e.g. a missing dependency or wrong architecture.
                attempts.Add($"{candidate}: could not be loaded ({ex.Message})");
                continue;
            }

            if (!NativeLibrary.TryGetExport(handle, "OrtGetApiBase", out var getApiBase))
            {
                attempts.Add($"{candidate}: loaded but exports no OrtGetApiBase");
                continue;
            }

            IntPtr apiBase;
            unsafe
            {
                apiBase = ((delegate* unmanaged[Cdecl]<IntPtr>)getApiBase)();
            }
            if (apiBase == IntPtr.Zero)
            {
                attempts.Add($"{candidate}: OrtGetApiBase returned null");
                continue;
            }

            var loadedFrom = isName ? ResolveLoadedPath(candidate) : Path.GetFullPath(candidate);
            return (handle, apiBase, loadedFrom);
        }

        throw LoadFailure(attempts);
    }

    private static IEnumerable<(string Candidate, bool IsName)> Candidates(string? explicitPath)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            yield return (explicitPath, false);
            yield break;
        }

        var fromEnvironment = Environment.GetEnvironmentVariable(LibraryPathVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            yield return (fromEnvironment, false);
            yield break;
        }

        yield return (Path.Combine(AppContext.BaseDirectory, LibraryFileName), false);
        yield return (LibraryFileName, true);
    }

    private static OnnxRuntimeException LoadFailure(List<string> attempts) =>
        new(OrtErrorCode.NoSuchFile,
            "Could not load the ONNX Runtime native library. Run eng/install.sh (it installs " +
            "eng/tools/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1, which projects " +
            $"referencing Platform.OnnxRuntime copy next to their DLL), or set {LibraryPathVariable} to the library's path. " +
            "Tried: " + string.Join("; ", attempts));

    /// <summary>Finds the file the OS loader picked for a bare library name, for diagnostics.</summary>
    private static string ResolveLoadedPath(string name)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var index = line.IndexOf('/');
                if (index >= 0 && line.EndsWith(name, StringComparison.Ordinal))
                {
                    return line[index..];
                }
            }
        }
        catch (IOException)
        {
            // Not on Linux or /proc unavailable: the bare name is the best description we have.
        }
        catch (UnauthorizedAccessException)
        {
        }
        return name;
    }
}
