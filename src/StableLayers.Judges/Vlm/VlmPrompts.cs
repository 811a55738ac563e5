using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace StableLayers.Judges.Vlm;

/// <summary>A versioned prompt template (src/StableLayers.Judges/Prompts/NAME.VERSION.md, embedded in the assembly).</summary>
public sealed record PromptTemplate(string Name, string Version, string Text)
{
    /// <summary>"rubric.v1": recorded with every judgement and part of every cache key.</summary>
    public string Id => $"{Name}.{Version}";

    /// <summary>SHA-256 of the template text, so an edited template never reuses cached replies.</summary>
    public string Hash { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Text)));

    public string Render(IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sb = new StringBuilder(Text);
        foreach (var (k, v) in values)
        {
            sb.Replace("{{" + k + "}}", v);
        }

        string s = sb.ToString();
        int open = s.IndexOf("{{", StringComparison.Ordinal);
        if (open >= 0)
        {
            throw new InvalidOperationException($"prompt {Id}: unfilled placeholder at {open.ToString(CultureInfo.InvariantCulture)}");
        }

        return s;
    }
}

public static class VlmPrompts
{
    public const string DefaultVersion = "v1";

    public static PromptTemplate Rubric(string version = DefaultVersion) => Load("rubric", version);

    public static PromptTemplate Grid(string version = DefaultVersion) => Load("grid", version);

    public static PromptTemplate Load(string name, string version)
    {
        string resource = $"StableLayers.Judges.Prompts.{name}.{version}.md";
        using Stream? s = typeof(VlmPrompts).Assembly.GetManifestResourceStream(resource)
            ?? throw new ArgumentException($"no prompt template {name}.{version} (embedded resource {resource})");
        using var reader = new StreamReader(s, Encoding.UTF8);
        return new PromptTemplate(name, version, reader.ReadToEnd().Replace("\r\n", "\n", StringComparison.Ordinal));
    }
}
