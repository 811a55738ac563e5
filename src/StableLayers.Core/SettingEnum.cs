using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace StableLayers.Core;

/// <summary>
/// The names an enum's values have in settings files and on the command line: the member name in kebab case
/// (<c>SumRescale</c> is <c>sum-rescale</c>, <c>Vlm</c> is <c>vlm</c>). Settings are parsed into the enum once, when
/// they are read, so no code compares setting strings afterwards.
/// </summary>
public static class SettingEnum
{
    /// <summary>Every name, in declaration order.</summary>
    public static IReadOnlyList<string> Names<TEnum>()
        where TEnum : struct, Enum => Table<TEnum>.Names;

    /// <summary>"a, b, c": the names, for error messages.</summary>
    public static string Choices<TEnum>()
        where TEnum : struct, Enum => string.Join(", ", Table<TEnum>.Names);

    public static string Name<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        foreach (var (name, v) in Table<TEnum>.Entries)
        {
            if (EqualityComparer<TEnum>.Default.Equals(v, value))
            {
                return name;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(value), value, $"not a {typeof(TEnum).Name}");
    }

    public static bool TryParse<TEnum>(string? name, out TEnum value)
        where TEnum : struct, Enum
    {
        foreach (var (n, v) in Table<TEnum>.Entries)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                value = v;
                return true;
            }
        }

        value = default;
        return false;
    }

    /// <summary>The value named <paramref name="name"/>; otherwise a <see cref="BadInputException"/> naming <paramref name="setting"/>.</summary>
    public static TEnum Parse<TEnum>(string name, string setting)
        where TEnum : struct, Enum =>
        TryParse<TEnum>(name, out var value) ? value : throw new BadInputException(setting, $"'{name}' is not one of {Choices<TEnum>()}");

    private static string Kebab(string pascal)
    {
        var s = new StringBuilder(pascal.Length + 4);
        for (int i = 0; i < pascal.Length; i++)
        {
            if (char.IsUpper(pascal[i]) && i > 0)
            {
                s.Append('-');
            }

            s.Append(char.ToLowerInvariant(pascal[i]));
        }

        return s.ToString();
    }

    private static class Table<TEnum>
        where TEnum : struct, Enum
    {
        public static readonly (string Name, TEnum Value)[] Entries = [.. Enum.GetValues<TEnum>().Select(v => (Kebab(v.ToString()), v))];

        public static readonly string[] Names = [.. Entries.Select(e => e.Name)];
    }
}

/// <summary>
/// JSON (and so TOML) for an enum setting by its <see cref="SettingEnum"/> name. An unknown name throws a
/// <see cref="SettingValueException"/> whose message lists the valid names; the reader adds the key.
/// </summary>
public sealed class SettingEnumConverter<TEnum> : JsonConverter<TEnum>
    where TEnum : struct, Enum
{
    public override TEnum Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        return SettingEnum.TryParse<TEnum>(name, out var value)
            ? value
            : throw new SettingValueException($"'{name ?? reader.TokenType.ToString()}' is not one of {SettingEnum.Choices<TEnum>()}");
    }

    public override void Write(Utf8JsonWriter writer, TEnum value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(SettingEnum.Name(value));
    }
}

/// <summary>A setting's value is not one it can take; <see cref="JsonException.Path"/> says which key.</summary>
public sealed class SettingValueException : JsonException
{
    public SettingValueException()
    {
    }

    public SettingValueException(string message)
        : base(message)
    {
    }

    public SettingValueException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>The key as written in the file ("grpo.ratio_mode"), from the JSON path ("$.grpo.ratio_mode").</summary>
    public string Key => Path is { } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : Path ?? "?";
}
