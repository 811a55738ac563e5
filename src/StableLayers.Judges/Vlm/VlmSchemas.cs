using System.Text.Json;
using System.Text.Json.Nodes;

namespace StableLayers.Judges.Vlm;

/// <summary>JSON schemas for response_format json_schema (phase 1 and phase 2 replies).</summary>
public static class VlmSchemas
{
    public static JsonElement Rubric()
    {
        var schema = CriteriaObject(5);
        return JsonSerializer.SerializeToElement(schema);
    }

    public static JsonElement Grid(IEnumerable<string> labels)
    {
        var row = CriteriaObject(100);
        ((JsonObject)row["properties"]!).Insert(0, "label", new JsonObject { ["type"] = "string", ["enum"] = new JsonArray(labels.Select(l => (JsonNode)l).ToArray()) });
        ((JsonArray)row["required"]!).Insert(0, "label");
        var schema = new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject { ["candidates"] = new JsonObject { ["type"] = "array", ["items"] = row } },
            ["required"] = new JsonArray("candidates"),
            ["additionalProperties"] = false,
        };
        return JsonSerializer.SerializeToElement(schema);
    }

    private static JsonObject CriteriaObject(int max)
    {
        var props = new JsonObject();
        foreach (string k in Criteria.Keys)
        {
            props[k] = new JsonObject { ["type"] = "integer", ["minimum"] = 0, ["maximum"] = max };
        }

        return new JsonObject
        {
            ["type"] = "object",
            ["properties"] = props,
            ["required"] = new JsonArray(Criteria.Keys.Select(k => (JsonNode)k).ToArray()),
            ["additionalProperties"] = false,
        };
    }
}
