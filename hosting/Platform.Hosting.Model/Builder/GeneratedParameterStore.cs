using System.Security.Cryptography;
using System.Text.Json;

namespace Platform.Hosting;

/// <summary>
/// Keeps generated parameter values in <c>&lt;state&gt;/parameters.json</c>, so a generated password
/// stays the same across AppHost restarts (Aspire keeps them in user secrets).
/// </summary>
public sealed class GeneratedParameterStore(string stateDirectory)
{
    private readonly Lock _gate = new();
    private readonly string _path = Path.Combine(stateDirectory, "parameters.json");

    /// <summary>The stored value for <paramref name="name"/>, generating and persisting one when absent.</summary>
    public string GetOrGenerate(string name, int minLength)
    {
        lock (_gate)
        {
            var values = File.Exists(_path)
                ? JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(_path)) ?? []
                : [];
            if (values.TryGetValue(name, out var existing))
            {
                return existing;
            }

            var value = Generate(minLength);
            values[name] = value;
            Directory.CreateDirectory(stateDirectory);
            var tmp = _path + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(values, new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, _path, overwrite: true);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(_path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            return value;
        }
    }

    /// <summary>A random value of letters and digits only: safe in every connection-string format.</summary>
    public static string Generate(int minLength)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        return RandomNumberGenerator.GetString(alphabet, Math.Max(minLength, 22));
    }
}
